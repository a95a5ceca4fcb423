"""The Redis Persistence Layer: connections, the key schema, worker credentials, shared Lua.

- ``connection``: clients (password, TLS, database, Sentinel), bounded retries, error
  translation (``translated_errors``: the one place redis-py errors become the engine's taxonomy);
- ``urls``: the URL grammar (``redis+sentinel://``) and ``redacted`` (no password in a log);
- ``keys``: every key name, documented in one place;
- ``acl``: the per-job Redis users of workers;
- ``lua_common``: the Lua functions the queue's and the job state's scripts share, and
  which component owns which script.

This subpackage is the only part of the engine that imports ``redis``; the task queue
(``irods_ingest.queue``) and the job state (``irods_ingest.jobstate``) reach Redis through it.
"""
