"""Redis persistence layer: connections, the key schema, the task queue and job state.

This subpackage is the only part of the engine that imports ``redis``.
"""
