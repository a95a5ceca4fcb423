"""``irods-ingest demo``: a whole ingest on embedded defaults, nothing to set up.

Starts a private ``redis-server`` (unless a URL is given) and the iRODS protocol test
server, ingests PATH (or a generated sample tree) with local worker processes and a
live progress bar, then prints a summary and what landed in iRODS. Everything it
started is stopped and its scratch directory removed, whatever happens.

The run itself is the engine's local run (``irods_ingest.actions.local``), shown as
``irods-ingest start --workers N --progress`` shows it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from irods_ingest.config import JobConfig, Operation
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.irods_io.session import IrodsSettings, open_session

DEMO_COLLECTION = "/tempZone/home/rods/demo"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irods-ingest demo",
        description="A whole ingest on embedded defaults: a private redis-server, the iRODS test server, local workers.",
    )
    parser.add_argument("path", nargs="?", default=None, help="directory to ingest (default: a generated sample tree)")
    parser.add_argument("--redis-url", "--redis_url", default=None, help="use this Redis instead of starting a private one")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--files", type=int, default=500, help="size of the generated sample tree")
    return parser


def main(argv: list[str]) -> int:
    from irods_ingest import logs

    args = build_parser().parse_args(argv)
    logs.configure("WARNING")
    return run_demo(path=args.path, redis_url=args.redis_url, workers=args.workers, files=args.files)


def generate_tree(root: Path, files: int, seed: int = 7) -> None:
    """A small realistic tree: nested directories, mixed sizes, a few awkward names."""
    rng = random.Random(seed)
    directories = [root]
    for index in range(max(1, files // 25)):
        parent = rng.choice(directories)
        child = parent / f"run_{index:03d}"
        child.mkdir(parents=True, exist_ok=True)
        directories.append(child)
    awkward = ["with space.txt", "ünïcødé.dat", "semi;colon.csv", "quote'name.txt"]
    for index in range(files):
        directory = rng.choice(directories)
        name = awkward[index] if index < len(awkward) else f"sample_{index:05d}.bin"
        size = rng.choice([0, 17, 1024, 4096, 65536, 300_000])
        (directory / name).write_bytes(rng.randbytes(size))


def run_demo(*, path: str | None, redis_url: str | None, workers: int, files: int) -> int:
    from irods_ingest.actions import connect, start_job
    from irods_ingest.actions.local import LocalWorkers, run_with_local_workers
    from irods_ingest.cli import ProgressBar, summary
    from irods_ingest_testkit.irods_server import IrodsTestServer
    from irods_ingest_testkit.redis_server import RedisServer

    scratch = Path(tempfile.mkdtemp(prefix="irods-ingest-demo-"))
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
        if redis_url is None:
            redis = RedisServer(data_dir=scratch / "redis").start()
            cleanup.callback(redis.close)
            redis_url = redis.url
            print(f"demo: started redis-server on {redis.host}:{redis.port}", file=sys.stderr)
        server = IrodsTestServer(data_dir=scratch / "irods", port=0)
        server.start()
        cleanup.callback(server.stop)
        print(f"demo: started the iRODS test server on {server.host}:{server.port} (zone tempZone, user rods)", file=sys.stderr)
        os.environ.update(
            IRODS_HOST=server.host,
            IRODS_PORT=str(server.port),
            IRODS_USER_NAME="rods",
            IRODS_ZONE_NAME="tempZone",
            IRODS_PASSWORD="rods",
            IRODS_INGEST_REDIS_URL=redis_url,
        )
        if path is None:
            source = scratch / "source"
            source.mkdir()
            generate_tree(source, files)
            print(f"demo: generated {files} sample files under {source}", file=sys.stderr)
        else:
            source = Path(path).resolve()
            if not source.is_dir():
                print(f"irods-ingest demo: {path} is not a directory", file=sys.stderr)
                return 2
        config = JobConfig(
            job_name="demo",
            source_path=str(source),
            target_collection=DEMO_COLLECTION,
            operation=Operation.PUT_SYNC,
        )
        client = connect(redis_url)
        result = start_job(client, config, force=True)
        print(f"demo: started job demo, run {result.run_id}, with {workers} worker processes", file=sys.stderr)
        final = run_with_local_workers(client, "demo", result.run_id, LocalWorkers(workers, redis_url=redis_url),
                                       ProgressBar())
        print(summary(final), file=sys.stderr)
        show_listing(IrodsSettings.from_environment())
        return 0 if final.state == "done" else 1
    return 1


def show_listing(settings: IrodsSettings, limit: int = 15) -> None:
    catalog = IrodsCatalog(open_session(settings))
    try:
        shown = 0
        total = 0
        total_bytes = 0
        for collection, _subcollections, objects in catalog.session.collections.get(DEMO_COLLECTION).walk():
            for obj in objects:
                total += 1
                total_bytes += obj.size
                if shown < limit:
                    print(f"  {obj.path}  {obj.size} B  replica on {obj.replicas[0].resource_name}")
                    shown += 1
            del collection
        print(f"in iRODS under {DEMO_COLLECTION}: {total} data objects, {total_bytes} bytes")
    finally:
        catalog.close()
