"""``python -m irods_ingest.testing.irods_server``: the test server's command line."""

from irods_ingest.testing.irods_server.cli import main

raise SystemExit(main())
