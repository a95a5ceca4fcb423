"""The S3 adapter: the only engine code that imports boto3/botocore (see .importlinter)."""

from irods_ingest.s3_io.bucket import CHUNK_BYTES, ListPage, S3Bucket, S3Object, TransferSettings, open_bucket

__all__ = ["CHUNK_BYTES", "ListPage", "S3Bucket", "S3Object", "TransferSettings", "open_bucket"]
