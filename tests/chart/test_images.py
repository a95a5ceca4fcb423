"""The container images, checked without a Docker engine: the Dockerfiles are parsed and held to
the rules of docs/images.md (pinned slim base, multi-stage, no build tools in the final stage,
numeric non-root user, the right entrypoint) and to the contracts with the chart and the operator.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Final

import pytest
import yaml

from irods_ingest_operator.constants import WORKER_COMMAND

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
IMAGES: Final = REPO_ROOT / "images"
PINNED_BASE: Final = re.compile(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?")
BUILD_TOOLS: Final = re.compile(
    r"\b(gcc|g\+\+|cc|clang|make|build-essential|python3?-dev|libc6?-dev|git|curl|wget|apt-get|apk|pip wheel)\b"
)
INSTRUCTIONS: Final = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER",
}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped; stages split at FROM."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path.name}: the last instruction ends with a line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for text in logical:
        keyword, _, arguments = text.partition(" ")
        keyword = keyword.upper()
        assert keyword in INSTRUCTIONS, f"{path.name}: unknown instruction {keyword!r}"
        arguments = " ".join(arguments.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+ )?(\S+)(?: AS (\S+))?", arguments, re.IGNORECASE)
            assert match, f"{path.name}: cannot parse FROM {arguments}"
            stages.append(Stage(base=match.group(1), name=match.group(2)))
        elif not stages:
            assert keyword == "ARG", f"{path.name}: only ARG may precede the first FROM"
            name, _, default = arguments.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return Dockerfile(global_args, stages)


def resolve(reference: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], reference)


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


EXPECTED: Final = {
    # image → (entrypoint, the package the final stage installs, console script it must provide)
    "operator.Dockerfile": (["irods-ingest-operator"], "irods-ingest-operator[operator]"),
    "worker.Dockerfile": (["irods-ingest"], "irods-ingest-operator"),
}


@pytest.fixture(params=sorted(EXPECTED))
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, Dockerfile]:
    return str(request.param), parse(IMAGES / str(request.param))


def test_base_image_is_a_pinned_slim_python(dockerfile: tuple[str, Dockerfile]) -> None:
    name, parsed = dockerfile
    stage_names = {s.name for s in parsed.stages if s.name}
    for stage in parsed.stages:
        base = resolve(stage.base, parsed.global_args)
        assert base in stage_names or PINNED_BASE.fullmatch(base), f"{name}: FROM {base} is not pinned"
    assert PINNED_BASE.fullmatch(resolve(parsed.final.base, parsed.global_args))


def test_multi_stage_build_keeps_tools_out_of_the_final_image(dockerfile: tuple[str, Dockerfile]) -> None:
    name, parsed = dockerfile
    assert len(parsed.stages) >= 2, f"{name}: build wheels in a builder stage"
    builder = parsed.stages[0]
    assert builder.name == "builder"
    assert any("pip wheel" in run for run in builder.all("RUN")), f"{name}: the builder builds wheels"
    final = parsed.final
    assert final.name is None or final.name != "builder"
    for run in final.all("RUN"):
        assert not BUILD_TOOLS.search(run.replace("--mount=type=bind,from=builder", "")), f"{name}: {run}"
        assert "--no-index" in run, f"{name}: install only the builder's wheels: {run}"
    # The wheels arrive through a bind mount: they never become a layer of the final image.
    assert not [c for c in final.all("COPY") if "--from=builder" in c and "/wheels" in c]
    assert not final.all("ADD")


def test_runs_as_a_numeric_non_root_user(dockerfile: tuple[str, Dockerfile]) -> None:
    name, parsed = dockerfile
    users = parsed.final.all("USER")
    assert users, f"{name}: no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, f"{name}: USER {users[-1]} (the chart's runAsNonRoot needs a numeric uid)"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    last_user = max(i for i, ins in enumerate(parsed.final.instructions) if ins.keyword == "USER")
    last_run = max(i for i, ins in enumerate(parsed.final.instructions) if ins.keyword == "RUN")
    assert last_user > last_run, f"{name}: nothing may run as root after USER"


def test_entrypoint_is_an_installed_console_script(dockerfile: tuple[str, Dockerfile]) -> None:
    name, parsed = dockerfile
    entrypoint, package = EXPECTED[name]
    (declared,) = parsed.final.all("ENTRYPOINT")
    assert exec_form(declared) == entrypoint
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint[0] in scripts
    (install,) = parsed.final.all("RUN")
    assert package in install
    assert f"/opt/venv/bin/{entrypoint[0]} --version" in install, f"{name}: smoke-test the entrypoint at build"
    env = " ".join(parsed.final.all("ENV"))
    assert "PATH=/opt/venv/bin:$PATH" in env and "PYTHONDONTWRITEBYTECODE=1" in env


def test_copied_sources_exist(dockerfile: tuple[str, Dockerfile]) -> None:
    _name, parsed = dockerfile
    for copy in parsed.stages[0].all("COPY"):
        *sources, _destination = copy.split()
        for source in sources:
            assert (REPO_ROOT / source).exists(), source


def test_worker_image_runs_the_worker_deployments_command() -> None:
    parsed = parse(IMAGES / "worker.Dockerfile")
    (entrypoint,) = parsed.final.all("ENTRYPOINT")
    assert exec_form(entrypoint)[0] == WORKER_COMMAND[0]  # the Deployment's command resolves on PATH
    install = parsed.final.all("RUN")[0]
    assert "--without-pip" not in install, "derived images add handler dependencies with pip"


def test_worker_image_ships_the_native_listing() -> None:
    # The builder compiles irods_ingest._listing (setup.py); the final stage fails to build
    # rather than ship a worker that silently lists first syncs in pure Python.
    parsed = parse(IMAGES / "worker.Dockerfile")
    assert any(c.split()[:-1] == ["pyproject.toml", "setup.py", "README.md"] for c in parsed.stages[0].all("COPY"))
    assert any("gcc" in run for run in parsed.stages[0].all("RUN"))
    assert 'python -c "import irods_ingest._listing"' in parsed.final.all("RUN")[0]
    ignore = (IMAGES / "worker.Dockerfile.dockerignore").read_text().splitlines()
    assert "!setup.py" in ignore and "**/*.so" in ignore


def test_operator_image_has_no_pip_and_exposes_the_charts_ports() -> None:
    parsed = parse(IMAGES / "operator.Dockerfile")
    assert "--without-pip" in parsed.final.all("RUN")[0]
    values = yaml.safe_load((REPO_ROOT / "charts" / "irods-ingest-operator" / "values.yaml").read_text())
    (exposed,) = parsed.final.all("EXPOSE")
    assert {"8080", str(values["metrics"]["port"])} == set(exposed.split())
    assert values["securityContext"]["runAsUser"] == int(parsed.final.all("USER")[-1].split(":")[0])


def test_build_context_is_filtered_per_dockerfile() -> None:
    for name in EXPECTED:
        ignore = (IMAGES / f"{name}.dockerignore").read_text().splitlines()
        assert ignore[ignore.index("*")] == "*" and "!worker/" in ignore and "!operator/" in ignore


def test_images_carry_no_test_kit() -> None:
    """The test kit (testkit/, the irods-ingest-testkit distribution) reaches neither image: no
    stage copies it, no build context sends it, and the root project's wheel, the only thing the
    images install, cannot hold it (docs/adr-testkit.md)."""
    for name in EXPECTED:
        for stage in parse(IMAGES / name).stages:
            for copy in stage.all("COPY") + stage.all("ADD"):
                assert "testkit" not in copy, f"{name}: {copy}"
        rules = [line.strip() for line in (IMAGES / f"{name}.dockerignore").read_text().splitlines()]
        rules = [rule for rule in rules if rule and not rule.startswith("#")]
        assert rules[0] == "*", f"{name}.dockerignore: exclude everything first"
        sent = [rule for rule in rules if rule.startswith("!") and fnmatch("testkit", rule[1:].rstrip("/"))]
        assert not sent, f"{name}.dockerignore sends testkit/: {sent}"
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    find = project["tool"]["setuptools"]["packages"]["find"]
    packages = {
        ".".join(init.parent.relative_to(REPO_ROOT / where).parts)
        for where in find["where"]
        for init in (REPO_ROOT / where).rglob("__init__.py")
    }
    wheel = {p for p in packages if any(fnmatch(p, pattern) for pattern in find["include"])}
    assert {"irods_ingest", "irods_ingest_operator"} <= wheel
    assert not [p for p in wheel if "testkit" in p or p.startswith("irods_ingest.testing")], sorted(wheel)
    assert set(project["tool"]["setuptools"]["package-dir"]) == {"irods_ingest", "irods_ingest_operator"}
    extras = project["project"]["optional-dependencies"].values()
    requirements = [*project["project"]["dependencies"], *(r for extra in extras for r in extra)]
    assert not [r for r in requirements if "testkit" in r], "the project must not depend on its test kit"
