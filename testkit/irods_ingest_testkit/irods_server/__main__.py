"""``python -m irods_ingest_testkit.irods_server``: the test server's command line."""

from irods_ingest_testkit.irods_server.cli import main

raise SystemExit(main())
