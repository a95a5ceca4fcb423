"""The ``irods-ingest`` subcommands the test kit adds: ``demo`` and ``test-server``.

Registered in testkit/pyproject.toml under the entry-point group ``irods_ingest.commands``,
which ``irods-ingest`` reads (the engine never imports the test kit). Each command's module
is imported only when it runs, so listing the commands stays cheap.
"""

from __future__ import annotations

from irods_ingest.cli import ExtraCommand


def _demo(argv: list[str]) -> int:
    from irods_ingest_testkit.demo import main

    return main(argv)


def _test_server(argv: list[str]) -> int:
    from irods_ingest_testkit.irods_server.cli import main

    return main(argv)


demo = ExtraCommand(help="a whole ingest on embedded defaults (private Redis + iRODS test server)", main=_demo)
test_server = ExtraCommand(help="run the iRODS protocol test server", main=_test_server)
