"""irods_ingest_operator: the kopf operator reconciling SyncJob resources."""

__version__ = "0.1.0"
