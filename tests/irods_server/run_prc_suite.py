"""Run python-irodsclient's own bundled tests against the iRODS test server; count per module.

    .venv/bin/python tests/irods_server/run_prc_suite.py [--server-version 4.3.4] [--all] [module ...]

For each module: start a fresh test server in this process (PRC's suites assume a clean
zone), write ``~/.irods/irods_environment.json`` and the obfuscated ``.irodsA`` into a
scratch HOME with PRC's own ``make_environment_and_auth_files`` (what ``irods.test.helpers``
reads, also through ``IRODS_ENVIRONMENT_FILE``), run ``irods.test.<module>`` under pytest in
a subprocess, and print passed/failed/errors/skipped. Nothing can block for ever: each test
has a pytest-timeout (``--test-timeout``) and each module's process group is killed after
``--timeout`` seconds. ``--failures`` lists the failing test ids, ``--report FILE`` writes
the results as JSON. Results and the reason for each remaining failure are recorded in
``docs/irods-test-server.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from irods_ingest_testkit.irods_server import ADMIN_PASSWORD, ADMIN_USER, ZONE, IrodsTestServer

# The operations the engine uses: collections, data objects, metadata, queries.
DEFAULT_MODULES = ("collection_test", "data_obj_test", "meta_test", "query_test")
# Cheap to run as well; they cover ACLs, users/groups, resources, admin, connections, names.
EXTRA_MODULES = (
    "access_test", "user_group_test", "resource_test", "admin_test", "connection_test", "pool_test",
    "unicode_test", "test_paths", "zone_test", "file_test", "message_test", "exception_test",
)


@dataclass
class ModuleResult:
    module: str
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    problem: str = ""  # the module did not produce a report (timeout, collection failure)
    failing: list[str] = field(default_factory=list)
    skip_reasons: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        listed = ("failing", "skip_reasons")
        return {k: v for k, v in asdict(self).items() if k not in listed and (k != "problem" or v)}


def client_host(server_host: str) -> str:
    """This machine's name when it resolves to the server's address: PRC's suites run their
    "server-side file" tests (register, checksum on create...) only for a local, named host."""
    name = socket.gethostname()
    try:
        return name if socket.gethostbyname(name) == server_host else server_host
    except OSError:
        return server_host


def write_client_environment(home: Path, host: str, port: int) -> Path:
    from irods.test.helpers import make_environment_and_auth_files

    irods_dir = home / ".irods"
    make_environment_and_auth_files(str(irods_dir), host=host, port=port, user=ADMIN_USER, zone=ZONE,
                                    password=ADMIN_PASSWORD)
    return irods_dir / "irods_environment.json"


def read_junit(module: str, junit: Path) -> ModuleResult:
    result = ModuleResult(module)
    for case in ET.parse(junit).iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}.{case.get('name')}"
        if case.find("failure") is not None:
            result.failed += 1
            result.failing.append(name)
        elif case.find("error") is not None:
            result.errors += 1
            result.failing.append(name)
        elif (skipped := case.find("skipped")) is not None:
            result.skipped += 1
            result.skip_reasons.append(f"{name}: {skipped.get('message', '')}")
        else:
            result.passed += 1
    return result


def run_module(module: str, home: Path, env_file: Path, work: Path, timeout: float,
               test_timeout: float) -> ModuleResult:
    junit = work / f"{module}.xml"
    (work / "pytest.ini").write_text("[pytest]\n")  # keep the project's pytest settings out
    env = {**os.environ, "HOME": str(home), "IRODS_ENVIRONMENT_FILE": str(env_file)}
    env.pop("IRODS_TEST_HOST", None)
    cmd = [sys.executable, "-m", "pytest", "-c", str(work / "pytest.ini"), "--rootdir", str(work), "-q",
           "-p", "no:cacheprovider", "--timeout", str(test_timeout), f"--junitxml={junit}",
           "--pyargs", f"irods.test.{module}"]
    with (work / "pytest.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return ModuleResult(module, problem=f"timed out after {timeout:.0f} s")
    if not junit.exists():
        return ModuleResult(module, problem=f"no junit report (exit status {proc.returncode})")
    return read_junit(module, junit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"irods.test modules (default: {' '.join(DEFAULT_MODULES)})")
    parser.add_argument("--all", action="store_true", help="the default modules and " + " ".join(EXTRA_MODULES))
    parser.add_argument("--server-version", default="4.3.4")
    parser.add_argument("--timeout", type=float, default=600.0, help="hard limit per module, seconds")
    parser.add_argument("--test-timeout", type=float, default=120.0, help="limit per test, seconds")
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--failures", action="store_true", help="list failing test ids and skip reasons")
    args = parser.parse_args(argv)
    modules = list(args.modules) or list(DEFAULT_MODULES) + (list(EXTRA_MODULES) if args.all else [])
    results: list[ModuleResult] = []
    with tempfile.TemporaryDirectory(prefix="prc-suite-") as scratch:
        root = Path(scratch)
        for module in modules:
            home, work = root / f"home-{module}", root / f"work-{module}"
            home.mkdir()
            work.mkdir()
            with IrodsTestServer(root / f"server-{module}", server_version=args.server_version) as server:
                env_file = write_client_environment(home, client_host(server.host), server.port)
                result = run_module(module, home, env_file, work, args.timeout, args.test_timeout)
            results.append(result)
            print(json.dumps(result.summary()), flush=True)
            if args.failures:
                for name in result.failing:
                    print(f"    FAILED {name}", flush=True)
                for reason in result.skip_reasons:
                    print(f"    skipped {reason}", flush=True)
    totals = {k: sum(getattr(r, k) for r in results) for k in ("passed", "failed", "errors", "skipped")}
    print(json.dumps({"total": totals, "server_version": args.server_version}), flush=True)
    if args.report:
        args.report.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
