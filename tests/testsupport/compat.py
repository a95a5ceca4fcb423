"""The differential compatibility harness (tests/compat): one scenario run by the incumbent and by us, then compared.

Each system gets its own copy of the source tree (built by the same function, with the same
modification times) and its own target collection, on ONE redis-server and ONE iRODS test
server. The incumbent runs as its users run it: its celery workers (started once per session
in ``tests/compat/conftest.py``) and ``python -m irods_capability_automated_ingest.irods_sync start ...
--synchronous``; ours runs ``irods-ingest start ... --synchronous --workers N`` with the SAME
arguments in the incumbent's spellings (an incumbent option that ours refuses shows up as an
exit-status difference: a finding, not something this harness maps away).

Both get the same event-handler module: the scenario's source, unchanged, with an
instrumenting subclass appended (:data:`INSTRUMENT`) that records every hook call as one JSON
line in ``$COMPAT_TRACE_DIR/<job name>.jsonl`` and then calls the original hook.

Compared, per case, in four aspects (a known gap names the differences it explains):

* ``catalog``: everything under each target, relative to it (collections, data objects, size,
  replicas with resource, hierarchy, physical path, status, checksum, modify time against the
  source file's, AVUs, ACLs where the server answers) and what landed in the trash;
* ``trace``: the hook calls as multisets of (hook, argument kinds, ``meta`` path, target, root,
  initial_ingest, is_link);
* ``meta``: per hook, the ``meta`` keys and keyword-option names the incumbent passed and ours
  did not (ours may pass more);
* ``exit``: the exit status of every run (the output of a failed run is shown in the report).
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ALLOW_LIST = REPO / "tests" / "compat" / "allowed_differences.yaml"
TRACE_ENV = "COMPAT_TRACE_DIR"
SYSTEMS = ("incumbent", "ours")
RUN_TIMEOUT = 120.0

HOOKS = (
    *(f"{when}_{what}"
      for what in ("data_obj_create", "data_obj_modify", "data_obj_delete", "coll_create", "coll_modify", "coll_delete")
      for when in ("pre", "post")),
    "pre_job", "post_job",
)

# Appended to the scenario's handler source (which stays unchanged above it). Only the standard
# library: both systems compile it as an ordinary module.
INSTRUMENT = '''

# ---- appended by tests/testsupport/compat.py: record every hook call, then call the hook above
import json as _compat_json
import os as _compat_os
import types as _compat_types

_compat_base = event_handler
_COMPAT_META = ("path", "target", "root", "target_root", "job_name", "initial_ingest", "is_link")


def _compat_kind(value):
    if isinstance(value, _compat_types.ModuleType):
        return "module"
    if isinstance(value, dict):
        return "dict"
    if type(value).__name__ == "iRODSSession":
        return "session"
    if hasattr(value, "info") and hasattr(value, "error"):
        return "logger"
    return type(value).__name__


def _compat_record(hook, args, options):
    directory = _compat_os.environ.get("COMPAT_TRACE_DIR")
    if not directory:
        return
    meta = next((a for a in reversed(args) if isinstance(a, dict)), {})
    record = {
        "hook": hook,
        "args": [_compat_kind(a) for a in args],
        "meta_keys": sorted(meta),
        "meta": {k: meta[k] for k in _COMPAT_META if k in meta},
        "options": sorted(options),
    }
    job = str(meta.get("job_name") or "unknown-job")
    with open(_compat_os.path.join(directory, job + ".jsonl"), "a") as handle:
        handle.write(_compat_json.dumps(record, sort_keys=True, default=repr) + "\\n")


def _compat_wrap(hook):
    original = getattr(_compat_base, hook, None)

    def call(*args, **options):
        _compat_record(hook, args, options)
        if original is not None:
            return original(*args, **options)
        return None

    return staticmethod(call)


event_handler = type("event_handler", (_compat_base,), {hook: _compat_wrap(hook) for hook in HOOKS_TUPLE})
'''.replace("HOOKS_TUPLE", repr(HOOKS))

PLAIN_HANDLER = """\
from irods_capability_automated_ingest.core import Core


class event_handler(Core):
    pass
"""


# ============================================================================ scenarios
@dataclass(frozen=True)
class Step:
    """Between runs: change the source (returns the paths it wrote, relative), then run again."""

    describe: str
    change: Callable[[Path], list[str]]


@dataclass(frozen=True)
class Gap:
    """A known difference of issue 15: the differences whose ``what`` matches one of
    ``patterns`` (fnmatch). A case with gaps is xfail(strict): it must show every gap it
    declares, and nothing else that is not allowed, else it fails outright."""

    reason: str
    patterns: tuple[str, ...]

    def explains(self, difference: Difference) -> bool:
        return any(fnmatch.fnmatchcase(difference.what, p) for p in self.patterns)


@dataclass(frozen=True)
class Scenario:
    id: str  # the incumbent test it comes from
    origin: str  # module::Class::test of the incumbent's test suite
    source: Callable[[Path], None]
    handler: str | None = None  # event-handler source (None: a handler without methods)
    args: Callable[[Path], list[str]] = field(default=lambda _src: [])  # incumbent spellings; gets the source root
    steps: tuple[Step, ...] = ()
    gaps: tuple[Gap, ...] = ()


# ============================================================================ differences
class CompatDifference(AssertionError):
    """The two systems differ in a way the allow-list does not excuse."""


class KnownGapDifference(CompatDifference):
    """They differ exactly as the case's declared known gaps say (issue 15)."""


class GapClosed(AssertionError):
    """A declared gap no longer shows: remove it from the case (and the xfail with it)."""


@dataclass(frozen=True)
class Difference:
    aspect: str  # catalog | trace | exit
    key: str
    incumbent: Any
    ours: Any

    @property
    def what(self) -> str:
        return f"{self.aspect}: {self.key}"

    def __str__(self) -> str:
        return f"  {self.what}\n      incumbent: {self.incumbent!r}\n      ours:      {self.ours!r}"


def load_allow_list(path: Path = ALLOW_LIST) -> dict[str, list[dict[str, str]]]:
    data = yaml.safe_load(path.read_text()) or {}
    assert isinstance(data, dict), f"{path}: a mapping of case id -> list of allowed differences"
    return data


def classify(case: str, differences: list[Difference],
             allow: dict[str, list[dict[str, str]]]) -> tuple[list[Difference], list[Difference]]:
    """(allowed, not allowed): a difference is allowed when an entry's ``what`` (fnmatch) names it."""
    entries = allow.get(case, [])
    allowed = [d for d in differences if any(fnmatch.fnmatchcase(d.what, e["what"]) for e in entries)]
    return allowed, [d for d in differences if d not in allowed]


# ============================================================================ normalising
class Normalizer:
    """Replaces a system's own names (source root, target collection, job) by placeholders."""

    def __init__(self, source: Path, collection: str, job: str) -> None:
        relative_collection = collection.split("/", 2)[2]  # home/rods/NAME: as vault paths hold it
        self.pairs = sorted({(str(source), "<src>"), (os.path.realpath(source), "<src>"), (collection, "<coll>"),
                             (relative_collection, "<coll>"), (job, "<job>")}, key=lambda p: -len(p[0]))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for old, new in self.pairs:
                value = value.replace(old, new)
            return value
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


# ============================================================================ catalog snapshots
def _value(value: str, norm: Normalizer) -> str:
    """An AVU value, normalised; a base64 value (the character_map / UnicodeEncodeError AVUs
    hold the source path so) is shown decoded and normalised when it round-trips exactly."""
    with contextlib.suppress(ValueError):
        decoded = base64.b64decode(value, validate=True)
        if len(value) >= 8 and base64.b64encode(decoded).decode() == value:
            text = os.fsdecode(decoded)
            if norm(text) != text:
                return f"base64({norm(text)})"
    return str(norm(value))


def _name(relative: str, norm: Normalizer) -> str:
    """A logical name; the incumbent's ``irods_UnicodeEncodeError_<base64 of the source path>``
    names are shown with that path decoded and normalised."""
    head, marker, encoded = relative.rpartition("irods_UnicodeEncodeError_")
    return f"{head}{marker}{_value(encoded, norm)}" if marker else relative


def _avus(item: Any, norm: Normalizer) -> list[list[str]]:
    return sorted([norm(m.name), _value(m.value, norm), norm(m.units or "")] for m in item.metadata.items())


def _acls(session: Any, item: Any, norm: Normalizer) -> Any:
    try:
        return sorted(f"{a.user_name}#{a.user_zone}:{a.access_name}" for a in session.acls.get(item))
    except Exception as exc:  # the test server may not answer ACL queries
        return f"unavailable ({type(exc).__name__})"


def _epoch(value: Any) -> int | None:
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return int(value.timestamp())
    return int(value)


def _walk(session: Any, collection: str) -> Iterable[tuple[str, Any, list[Any]]]:
    if not session.collections.exists(collection):
        return []
    found = []
    for coll, _subs, objects in session.collections.get(collection).walk():
        rel = coll.path[len(collection) + 1 :]
        found.append((rel, coll, objects))
    return found


def snapshot(session: Any, collection: str, source: Path, norm: Normalizer) -> dict[str, Any]:
    """The catalog under ``collection``, relative to it, with this system's names normalised."""
    collections: dict[str, Any] = {}
    objects: dict[str, Any] = {}
    for rel, coll, items in _walk(session, collection):
        collections[rel or "."] = {"avus": _avus(coll, norm), "acls": _acls(session, coll, norm)}
        for obj in items:
            obj_rel = f"{rel}/{obj.name}" if rel else obj.name
            local = source / obj_rel
            obj_rel = _name(obj_rel, norm)
            local_mtime = int(local.stat().st_mtime) if local.exists() else None
            replicas = {}
            for replica in obj.replicas:
                mtime = _epoch(getattr(replica, "modify_time", None))
                replicas[str(replica.number)] = {
                    "resource": replica.resource_name,
                    "hierarchy": getattr(replica, "resc_hier", None),
                    "physical_path": norm(replica.path),
                    "status": str(getattr(replica, "status", None)),
                    "size": getattr(replica, "size", None),
                    "checksum": getattr(replica, "checksum", None) or None,
                    "modify_time": "= source mtime" if mtime is not None and mtime == local_mtime else "other",
                }
            objects[obj_rel] = {"size": obj.size, "replica_count": len(obj.replicas), "replicas": replicas,
                                "avus": _avus(obj, norm), "acls": _acls(session, obj, norm)}
    zone, _, rest = collection.lstrip("/").partition("/")
    trash_root = f"/{zone}/trash/{rest}"
    trash = sorted(f"{rel}/{obj.name}".lstrip("/") for rel, _coll, items in _walk(session, trash_root) for obj in items)
    trash += sorted(f"{rel}/" for rel, _coll, _items in _walk(session, trash_root) if rel)
    return {"exists": session.collections.exists(collection), "collections": collections, "objects": objects,
            "trash": trash}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix} {key!r}" if prefix else repr(key)))
        return flat
    return {prefix: value}


# ============================================================================ running
@dataclass
class Services:
    """What a case needs: the shared redis-server and iRODS test server, the incumbent's venv."""

    scratch: Path
    redis_url: str
    irods: Any  # testsupport.irods_fixtures.IrodsEnv
    incumbent: Path  # its virtualenv
    trace_dir: Path
    session_factory: Callable[[], Any]
    ours_workers: int = 2

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IRODS_", "CELERY_", "PYTHONPATH"))}
        home = self.scratch / "home"
        home.mkdir(exist_ok=True)
        return env | {
            "IRODS_HOST": self.irods.host, "IRODS_PORT": str(self.irods.port), "IRODS_USER_NAME": self.irods.user,
            "IRODS_ZONE_NAME": self.irods.zone, "IRODS_PASSWORD": self.irods.password, "PYTHONUNBUFFERED": "1",
            "HOME": str(home), TRACE_ENV: str(self.trace_dir), "CELERY_BROKER_URL": self.redis_url,
            "IRODS_INGEST_REDIS_URL": self.redis_url,
        }

    def command(self, system: str, source: Path, collection: str, job: str, handler: Path, args: list[str]) -> list[str]:
        common = [str(source), collection, "--job_name", job, "--event_handler", str(handler), *args, "--synchronous"]
        if system == "incumbent":
            return [str(self.incumbent / "bin" / "python"), "-m", "irods_capability_automated_ingest.irods_sync",
                    "start", *common]
        return [sys.executable, "-m", "irods_ingest", "start", *common, "--workers", str(self.ours_workers)]


@dataclass
class Run:
    command: list[str]
    exit_status: int
    output: str


@dataclass
class SystemResult:
    runs: list[Run]
    catalog: dict[str, Any]
    trace: Trace


@dataclass
class CaseResult:
    scenario: Scenario
    results: dict[str, SystemResult]
    differences: list[Difference]
    allowed: list[Difference]
    not_allowed: list[Difference]

    @property
    def status(self) -> str:
        return "identical" if not self.differences else "allowed" if not self.not_allowed else "different"

    def report(self) -> str:
        lines = [f"case {self.scenario.id} (from {self.scenario.origin}): {len(self.differences)} difference(s), "
                 f"{len(self.allowed)} allowed"]
        lines += [str(d) for d in self.not_allowed]
        for system, result in self.results.items():
            for i, run in enumerate(result.runs):
                if run.exit_status != 0:
                    tail = "\n".join(run.output.strip().splitlines()[-6:])
                    lines.append(f"  [{system} run {i}] exit {run.exit_status}: {' '.join(run.command[:4])} ...\n{tail}")
        return "\n".join(lines)


def _run(command: list[str], environ: dict[str, str], log: Path) -> Run:
    completed = subprocess.run(command, env=environ, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=RUN_TIMEOUT, errors="replace")
    output = completed.stdout + completed.stderr
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n{output}\n[exit {completed.returncode}]\n")
    return Run(command, completed.returncode, output)


def set_mtimes(root: Path, stamp: int, paths: Iterable[str] | None = None) -> None:
    """Give ``paths`` (default: everything under ``root``) the modification time ``stamp``."""
    targets = [root / p for p in paths] if paths is not None else [Path(d) / n for d, ds, fs in os.walk(root) for n in ds + fs]
    for target in targets:
        os.utime(target, (stamp, stamp), follow_symlinks=False)


def next_whole_second() -> int:
    """A modification time for changed files that is after every sync so far (the incumbent
    re-sends data only for ``mtime >= its last sync time``) and before anything the next runs
    write (so a data object's modify time equals it only when a system copied it on purpose):
    the next whole second, once the clock is a second past it."""
    stamp = int(time.time()) + 1
    while time.time() < stamp + 1.05:
        time.sleep(stamp + 1.05 - time.time())
    return stamp


def handler_text(handler: str | None, incumbent: Path) -> str:
    """The handler's source: given, ``example:NAME`` (the incumbent's examples/NAME.py, unchanged) or none."""
    if handler is None:
        return PLAIN_HANDLER
    if handler.startswith("example:"):
        found = sorted(incumbent.glob(f"lib/python*/site-packages/irods_capability_automated_ingest/examples/"
                                      f"{handler.removeprefix('example:')}.py"))
        assert found, f"the incumbent has no example {handler}"
        return found[0].read_text()
    return handler


JOB_HOOKS = ("pre_job", "post_job")


def call_meta(hook: str) -> tuple[str, ...]:
    """The ``meta`` values a call is compared on (the rest are compared as key sets). The job
    hooks' ``path``/``target`` are left out: the incumbent's ``post_job`` gets whichever
    directory its last task handled."""
    if hook in JOB_HOOKS:
        return ("root", "initial_ingest")
    if "data_obj" in hook:
        return ("path", "target", "root", "initial_ingest", "is_link")
    return ("path", "target", "root", "initial_ingest")


@dataclass
class Trace:
    """A system's hook calls: a multiset of (hook, argument kinds, meta values that matter), and
    per hook the union of the ``meta`` keys and of the keyword-option names it was given."""

    calls: Counter[str] = field(default_factory=Counter)
    meta_keys: dict[str, set[str]] = field(default_factory=dict)
    option_keys: dict[str, set[str]] = field(default_factory=dict)


def read_trace(path: Path, norm: Normalizer) -> Trace:
    trace = Trace()
    if not path.exists():
        return trace
    for line in path.read_text().splitlines():
        record = norm(json.loads(line))
        hook = record["hook"]
        call = {"hook": hook, "args": record["args"], **{k: record["meta"][k] for k in call_meta(hook) if k in record["meta"]}}
        trace.calls[json.dumps(call, sort_keys=True, ensure_ascii=False)] += 1
        trace.meta_keys.setdefault(hook, set()).update(record["meta_keys"])
        trace.option_keys.setdefault(hook, set()).update(record["options"])
    return trace


def run_case(services: Services, scenario: Scenario, serial: int) -> CaseResult:
    """Run ``scenario`` with both systems (interleaved run by run) and compare."""
    case_dir = services.scratch / f"case{serial:03d}"
    environ = services.environ()
    handler_source = handler_text(scenario.handler, services.incumbent) + INSTRUMENT
    base_stamp = int(time.time()) - 3600
    prepared: dict[str, tuple[Path, str, str, Path, Normalizer]] = {}
    for system in SYSTEMS:
        root = case_dir / system
        source = root / "src"
        source.mkdir(parents=True)
        scenario.source(source)
        set_mtimes(source, base_stamp)
        handler = root / "compat_handler.py"
        handler.write_text(handler_source)
        # alphanumeric only: a character_map handler must leave the target's own name alone
        collection = f"{services.irods.home}/compat{os.getpid()}c{serial}{system}"
        job = f"compat{os.getpid()}c{serial}{system}"
        prepared[system] = (source, collection, job, handler, Normalizer(source, collection, job))
    runs: dict[str, list[Run]] = {system: [] for system in SYSTEMS}

    def run_all() -> None:
        for system in SYSTEMS:
            source, collection, job, handler, _norm = prepared[system]
            command = services.command(system, source, collection, job, handler, scenario.args(source))
            runs[system].append(_run(command, environ, case_dir / f"{system}.log"))

    run_all()
    for step in scenario.steps:
        stamp = next_whole_second()
        for system in SYSTEMS:
            source = prepared[system][0]
            set_mtimes(source, stamp, step.change(source))
        run_all()
    results: dict[str, SystemResult] = {}
    session = services.session_factory()
    try:
        for system in SYSTEMS:
            source, collection, job, _handler, norm = prepared[system]
            results[system] = SystemResult(runs[system], snapshot(session, collection, source, norm),
                                           read_trace(services.trace_dir / f"{job}.jsonl", norm))
    finally:
        with contextlib.suppress(Exception):
            session.cleanup()
    differences = compare(results)
    allowed, not_allowed = classify(scenario.id, differences, load_allow_list())
    (case_dir / "differences.json").write_text(json.dumps(  # for whoever investigates the case
        {"case": scenario.id, "differences": [d.__dict__ | {"allowed": d in allowed} for d in differences],
         "exits": {system: [run.exit_status for run in runs[system]] for system in SYSTEMS},
         "catalogs": {system: results[system].catalog for system in SYSTEMS}},
        indent=1, default=sorted))
    return CaseResult(scenario, results, differences, allowed, not_allowed)


def compare(results: dict[str, SystemResult]) -> list[Difference]:
    inc, ours = results["incumbent"], results["ours"]
    differences: list[Difference] = []
    for i, (a, b) in enumerate(zip(inc.runs, ours.runs, strict=True)):
        if a.exit_status != b.exit_status:
            differences.append(Difference("exit", f"run {i} exit status", a.exit_status, b.exit_status))
    flat_a, flat_b = flatten(inc.catalog), flatten(ours.catalog)
    for key in sorted(set(flat_a) | set(flat_b)):
        if flat_a.get(key, "<absent>") != flat_b.get(key, "<absent>"):
            differences.append(Difference("catalog", key, flat_a.get(key, "<absent>"), flat_b.get(key, "<absent>")))
    for call in sorted(set(inc.trace.calls) | set(ours.trace.calls)):
        if inc.trace.calls[call] != ours.trace.calls[call]:
            differences.append(Difference("trace", call, inc.trace.calls[call], ours.trace.calls[call]))
    for what, a_keys, b_keys in (("meta keys", inc.trace.meta_keys, ours.trace.meta_keys),
                                 ("option names", inc.trace.option_keys, ours.trace.option_keys)):
        # hooks both called (the calls are compared above); keys only ours passes are no
        # difference: a handler written for the incumbent cannot depend on them
        for hook in sorted(set(a_keys) & set(b_keys)):
            if a_keys[hook] - b_keys[hook]:
                differences.append(Difference("meta", f"{hook} {what} missing", sorted(a_keys[hook] - b_keys[hook]), []))
    return differences


def check(result: CaseResult) -> None:
    """Raise for differences the allow-list does not excuse: KnownGapDifference when the case's
    declared gaps explain every one of them and each gap still shows; otherwise CompatDifference
    (unexplained differences) or GapClosed (a declared gap that no longer shows)."""
    gaps = result.scenario.gaps
    unexplained = [d for d in result.not_allowed if not any(g.explains(d) for g in gaps)]
    if unexplained:
        shown = CaseResult(result.scenario, result.results, result.differences, result.allowed, unexplained)
        raise CompatDifference(shown.report())
    closed = [g.reason for g in gaps if not any(g.explains(d) for d in result.not_allowed)]
    if closed:
        raise GapClosed(f"case {result.scenario.id}: no longer shows the gap(s) {closed}: remove them from the case")
    if result.not_allowed:
        raise KnownGapDifference(f"known gap(s) {[g.reason for g in gaps]}:\n" + result.report())
