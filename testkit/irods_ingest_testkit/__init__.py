"""Testing kit: local service launchers and the iRODS protocol test server.

Used by the project's test suite, by ``irods-ingest demo`` and by users who want to
test their event handlers offline.
"""
