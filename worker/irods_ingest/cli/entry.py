"""``irods-ingest``: run ingest jobs without Kubernetes (close to the incumbent's ``irods_sync``).

Options are spelled with hyphens; the incumbent's underscore spellings are accepted as
aliases so migrating scripts keep working. Bad arguments get one clear line and exit
code 2; a run that ends with failed files exits 1.

Other installed distributions may add subcommands through the entry-point group
``irods_ingest.commands`` (see :class:`ExtraCommand`): the test kit adds ``demo`` and
``test-server`` that way, so this package never imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from irods_ingest.cli.commands import COMMANDS, EXIT_FAILED, EXIT_USAGE
from irods_ingest.cli.extras import TESTKIT_COMMANDS, TESTKIT_MISSING, extra_commands
from irods_ingest.cli.options import UsageError, build_parser, resolve_redis_url
from irods_ingest.errors import ConfigError, IngestError


def main(argv: Sequence[str] | None = None) -> int:
    from irods_ingest import logs

    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv[0] if argv else ""
    if name and name not in COMMANDS and not name.startswith("-"):
        extra = extra_commands(COMMANDS)
        if name in extra:  # its options belong to its own parser
            return _reported(name, lambda: extra[name].main(argv[1:]))
        if name in TESTKIT_COMMANDS:
            print(f"irods-ingest {name}: {TESTKIT_MISSING}", file=sys.stderr)
            return EXIT_USAGE
    parser = build_parser(extra_commands(COMMANDS))
    args = parser.parse_args(argv)
    logs.configure(getattr(args, "log_level", "WARNING") or "WARNING")

    def run() -> int:
        resolve_redis_url(args)
        return COMMANDS[args.command](args)

    return _reported(args.command, run)


def _reported(command: str, run: Callable[[], int]) -> int:
    """Run a command, reporting the engine's errors as one line each (the exit codes above)."""
    try:
        return run()
    except UsageError as exc:
        print(f"irods-ingest {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"irods-ingest {command}: invalid {problem}", file=sys.stderr)
        return EXIT_USAGE
    except IngestError as exc:
        print(f"irods-ingest {command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
