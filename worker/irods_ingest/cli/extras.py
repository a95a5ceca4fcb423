"""Subcommands other distributions add (entry-point group ``irods_ingest.commands``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

COMMAND_GROUP: Final = "irods_ingest.commands"
# Subcommands of the test kit (testkit/, distribution irods-ingest-testkit): named here only
# to tell a user without it what to install.
TESTKIT_COMMANDS: Final = ("demo", "test-server")
TESTKIT_MISSING: Final = (
    "this command comes with the test kit, which is not installed: install the irods-ingest-testkit "
    "distribution from the project's testkit/ folder (`pip install -e testkit` in a checkout, which "
    "`scripts/dev setup` does)"
)


@dataclass(frozen=True)
class ExtraCommand:
    """A subcommand another installed distribution adds to ``irods-ingest``.

    Registered as an entry point of the group ``irods_ingest.commands`` whose name is the
    subcommand's and whose object is one of these. ``main`` gets the arguments after the
    subcommand's name (it parses them and sets up logging itself) and returns the exit status;
    the engine's errors it raises are reported as the built-in commands' are.
    """

    help: str
    main: Callable[[list[str]], int]


def extra_commands(builtin: Collection[str]) -> dict[str, ExtraCommand]:
    """The installed extra subcommands by name, sorted; never one that shadows a built-in
    (``builtin``: the names of the built-in subcommands)."""
    from importlib.metadata import entry_points

    found: dict[str, ExtraCommand] = {}
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        if entry.name in builtin:
            continue
        command = entry.load()
        # Checked by shape: `python -m irods_ingest.cli` would hold a second ExtraCommand class.
        if not (isinstance(getattr(command, "help", None), str) and callable(getattr(command, "main", None))):
            raise TypeError(f"entry point {entry.name} = {entry.value} ({COMMAND_GROUP}) is not an ExtraCommand")
        found[entry.name] = command
    return found


