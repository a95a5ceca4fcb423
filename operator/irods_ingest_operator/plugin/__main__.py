"""``python -m irods_ingest_operator.plugin``: the same as ``kubectl ingest``."""

from irods_ingest_operator.plugin.cli import main

raise SystemExit(main())
