"""The AVUs a new data object gets: the incumbent's provenance AVUs, and the job's
declarative metadata templates."""

from __future__ import annotations

import os
from typing import Any

from irods_ingest.execute.context import JobContext
from irods_ingest.irods_io.catalog import IrodsCatalog


def annotate(job: JobContext, catalog: IrodsCatalog, target: str, meta: dict[str, Any], source: str) -> None:
    """The provenance AVUs the incumbent writes for renamed names, sockets and links."""
    if meta.get("b64_path_str"):
        catalog.add_metadata(
            target,
            f"irods::automated_ingest::{meta['b64_reason']}",
            meta["b64_path_str"],
            "python3.base64.b64encode(full_path_of_source_file)",
        )
    if meta.get("is_socket"):
        catalog.add_metadata(target, "socket_target", "socket", "automated_ingest")
    elif meta.get("is_link"):
        link = os.path.join(os.path.dirname(source), os.readlink(source))
        catalog.add_metadata(target, "link_target", link, "automated_ingest")
    if job.config.metadata:
        context = template_context(job, meta)
        for attribute, value, units in job.config.metadata:
            catalog.add_metadata(target, attribute.format_map(context), value.format_map(context), units)


def template_context(job: JobContext, meta: dict[str, Any]) -> dict[str, str]:
    """The fields a declarative metadata template may use (the SyncJob CRD documents them)."""
    namespace, _, name = job.name.rpartition("/")
    source = str(meta.get("path") or "")
    return {
        "job": name,
        "namespace": namespace,
        "run": str(meta.get("run", "")),
        "path": source,
        "relativePath": os.path.relpath(source, job.config.source_root) if source else "",
        "name": os.path.basename(source),
        "logicalPath": str(meta.get("target", "")),
        "collection": job.config.target_collection,
        "size": str(meta.get("size", "")),
        "mtime": str(int(meta.get("mtime") or 0)),
    }
