"""The test kit: the iRODS protocol test server, a ``redis-server`` launcher, process helpers
and ``irods-ingest demo``.

A distribution of its own (``irods-ingest-testkit``, testkit/pyproject.toml) beside the
engine's: used by the project's test suite and benchmarks, by ``irods-ingest demo`` and
``irods-ingest test-server`` (added through the ``irods_ingest.commands`` entry points),
and by users who test their event handlers offline. It may import the engine; the engine,
the operator and their images never contain or import it (docs/adr-testkit.md).
"""
