"""``irods-ingest``: run ingest jobs without Kubernetes (close to the incumbent's ``irods_sync``).

Options are spelled with hyphens; the incumbent's underscore spellings are accepted as
aliases so migrating scripts keep working. Bad arguments get one clear line and exit
code 2; a run that ends with failed files exits 1.

Other installed distributions may add subcommands through the entry-point group
``irods_ingest.commands`` (see :class:`ExtraCommand`): the test kit adds ``demo`` and
``test-server`` that way, so this package never imports it.
"""

from irods_ingest.cli.display import ProgressBar, human_bytes, progress_line, summary
from irods_ingest.cli.entry import main
from irods_ingest.cli.extras import COMMAND_GROUP, ExtraCommand, extra_commands
from irods_ingest.cli.options import UsageError, build_parser, config_from_args, read_keypair

__all__ = [
    "COMMAND_GROUP",
    "ExtraCommand",
    "ProgressBar",
    "UsageError",
    "build_parser",
    "config_from_args",
    "extra_commands",
    "human_bytes",
    "main",
    "progress_line",
    "read_keypair",
    "summary",
]
