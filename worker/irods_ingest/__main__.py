from irods_ingest.cli import main

raise SystemExit(main())
