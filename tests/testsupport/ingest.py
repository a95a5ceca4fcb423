"""Running whole ingest jobs in tests: a real Redis, the iRODS test server (or a real iRODS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irods_ingest.actions import start_job
from irods_ingest.config import JobConfig
from irods_ingest.irods_io.session import IrodsSettings
from irods_ingest.jobstate import ChangeCache, FailureLog, RunState, RunStatus
from irods_ingest.store.connection import connect
from irods_ingest.worker import WorkerOptions, run_worker
from testsupport.irods_fixtures import IrodsEnv


@dataclass
class Ingest:
    """One test's job: its source tree, target collection, and ways to run and inspect it."""

    redis_url: str
    env: IrodsEnv
    session: Any  # a PRC session for assertions
    source: Path
    target: str
    job: str

    @property
    def settings(self) -> IrodsSettings:
        return IrodsSettings(host=self.env.host, port=self.env.port, user=self.env.user, zone=self.env.zone,
                             password=self.env.password)

    def config(self, **changes: Any) -> JobConfig:
        return JobConfig(job_name=self.job, source_path=str(self.source), target_collection=self.target).with_changes(**changes)

    def run(self, handler: str | None = None, workers: int = 2, **changes: Any) -> RunStatus:
        client = connect(self.redis_url)
        start_job(client, self.config(**changes), handler, force=True)
        options = WorkerOptions(jobs=[self.job], redis_url=self.redis_url, concurrency=workers, exit_when_idle=True,
                                irods_settings=self.settings)
        assert run_worker(options, install_signals=False) == 0
        return self.runs.status()

    @property
    def runs(self) -> RunState:
        return RunState(connect(self.redis_url), self.job)

    @property
    def cache(self) -> ChangeCache:
        return ChangeCache(connect(self.redis_url), self.job)

    def failures(self) -> list[dict[str, Any]]:
        return FailureLog(connect(self.redis_url), self.job).records()

    def write(self, relative: str, data: bytes | str) -> Path:
        path = self.source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def logical(self, relative: str) -> str:
        return f"{self.target}/{relative}" if relative else self.target

    def objects(self) -> dict[str, Any]:
        """Every data object under the target, by path relative to it."""
        found: dict[str, Any] = {}
        if not self.session.collections.exists(self.target):
            return found
        for _coll, _subs, objects in self.session.collections.get(self.target).walk():
            for obj in objects:
                found[obj.path[len(self.target) + 1 :]] = obj
        return found

    def read(self, relative: str) -> bytes:
        with self.session.data_objects.open(self.logical(relative), "r") as handle:
            data: bytes = handle.read()
        return data




HOOKS = (
    "pre_data_obj_create", "post_data_obj_create", "pre_data_obj_modify", "post_data_obj_modify",
    "pre_coll_create", "post_coll_create", "pre_coll_modify", "post_coll_modify", "pre_data_obj_delete", "post_data_obj_delete",
)


def hooks_handler(log: Path, operation: str = "REGISTER_SYNC") -> str:
    """Handler source recording every hook call (and pre_job/post_job) as a line in ``log``."""
    methods = "".join(
        # the incumbent's arguments: no logger for the delete hooks, the Put operations' Operation after meta
        f"    @staticmethod\n    def {hook}(hdlr_mod, {'' if 'delete' in hook else 'logger, '}session, meta, *args, **options):\n"
        f"        _record('{hook}', meta.get('target'))\n"
        for hook in HOOKS
    )
    return (
        "from irods_capability_automated_ingest.core import Core\n"
        "from irods_capability_automated_ingest.utils import Operation\n"
        f"LOG = {str(log)!r}\n"
        "def _record(event, target):\n"
        "    with open(LOG, 'a') as handle:\n"
        "        handle.write(f'{event} {target}\\n')\n"
        "class event_handler(Core):\n"
        f"    @staticmethod\n    def operation(session, meta, **options):\n        return Operation.{operation}\n"
        "    @staticmethod\n    def pre_job(hdlr_mod, logger, meta):\n        _record('pre_job', None)\n"
        "    @staticmethod\n    def post_job(hdlr_mod, logger, meta):\n        _record('post_job', None)\n"
        + methods
    )


def read_hook_log(log: Path) -> list[str]:
    """The event names recorded by :func:`hooks_handler`, in order."""
    if not log.exists():
        return []
    return [line.split(" ", 1)[0] for line in log.read_text().splitlines()]
