"""irods_ingest: the ingest engine, the worker process and the ``irods-ingest`` CLI.

The engine never imports kopf or kubernetes; the operator package drives it.
"""

__version__ = "0.1.0"
