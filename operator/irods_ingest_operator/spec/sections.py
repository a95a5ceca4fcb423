"""Reading a SyncJob spec section by section into the typed model, every problem collected.

The reader checks everything the CRD schema checks again (the CLI reads specs that never
saw an API server) and applies the rules of :mod:`.rules` where each field is read, so the
problems come out in spec order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from irods_ingest.config import BUCKET_NAME_FIX, valid_bucket_name
from irods_ingest_operator.constants import DeleteMode, FileType, ImagePullPolicy, Operation, SymlinkPolicy
from irods_ingest_operator.spec import model as m
from irods_ingest_operator.spec.reader import TypedReader, kind_of
from irods_ingest_operator.spec.rules import (
    METADATA_TEMPLATE_FIELDS,
    check_collection,
    check_metadata_template,
    check_schedule,
    delete_mode_problems,
    replica_bounds_problems,
    replica_resource_problems,
    s3_endpoint_problems,
    source_path_problem,
    volume_problems,
)

_SPEC_KEYS: Final = frozenset(
    {
        "source", "destination", "operation", "deleteMode", "filter", "handler", "metadata", "schedule",
        "suspend", "runNow", "retryFailed", "workers", "initialIngest", "ignoreCache", "symlinks",
        "verifyChecksum",
    }
)  # fmt: skip
_SOURCE_KEYS: Final = frozenset({"path", "volume", "s3"})
_S3_KEYS: Final = frozenset({"endpoint", "bucket", "prefix", "region", "insecure", "credentialsSecret", "transfer"})
_S3_TRANSFER_KEYS: Final = frozenset({"parallelThresholdMiB", "partSizeMiB", "partsInFlight", "listPageSize"})
_S3_SECRET_KEYS: Final = frozenset({"name", "accessKeyIdKey", "secretAccessKeyKey"})
_DESTINATION_KEYS: Final = frozenset({"collection", "resource", "connectionSecret"})
_CONNECTION_SECRET_KEYS: Final = frozenset({"name", "environmentKey", "passwordKey"})
_FILTER_KEYS: Final = frozenset({"excludeTypes", "excludeNames", "excludeDirectories", "includeNames"})
_HANDLER_KEYS: Final = frozenset({"configMapRef"})
_CONFIG_MAP_REF_KEYS: Final = frozenset({"name", "key"})
_METADATA_KEYS: Final = frozenset({"attribute", "value", "units"})
_WORKERS_KEYS: Final = frozenset(
    {
        "image", "imagePullPolicy", "minReplicas", "maxReplicas", "concurrency", "resources",
        "filesPerTask", "taskTimeoutSeconds", "maxRetries", "retryBackoffSeconds",
    }
)  # fmt: skip
_RESOURCES_KEYS: Final = frozenset({"limits", "requests", "claims"})


class SpecReader(TypedReader):
    """Reads one spec; ``problems`` holds everything wrong with it, in spec order."""

    def spec(self, raw: object) -> m.SyncJobSpec | None:
        if raw is None:
            self.problem("spec", "is required", "add a spec with at least source and destination")
            return None
        spec = self.obj(raw, "spec", _SPEC_KEYS)
        if not spec:
            if isinstance(raw, Mapping):
                self.problem("spec.source", "is required", "set source.path or source.s3")
                self.problem(
                    "spec.destination", "is required", "set destination.collection and connectionSecret"
                )
            return None
        source = self.source(spec.get("source"))
        destination = self.destination(spec.get("destination"))
        operation = self.enum(spec, "operation", "spec", Operation, m.DEFAULT_OPERATION)
        delete_mode = self.enum(spec, "deleteMode", "spec", DeleteMode, m.DEFAULT_DELETE_MODE)
        handler = self.handler(spec.get("handler"))
        workers = self.workers(spec.get("workers"))
        self.add(delete_mode_problems(operation, delete_mode, source))
        self.add(replica_resource_problems(operation, destination, handler))
        schedule = self.string(spec, "schedule", "spec") or None
        if schedule is not None and (why := check_schedule(schedule)) is not None:
            self.problem(
                "spec.schedule", f"{schedule!r} {why}", "use five cron fields, e.g. '0 2 * * *', or @daily"
            )
        spec_filter = self.filter(spec.get("filter"))
        metadata = self.metadata(spec.get("metadata"))
        suspend = self.boolean(spec, "suspend", "spec", False)
        run_now = self.string(spec, "runNow", "spec") or None
        retry_failed = self.string(spec, "retryFailed", "spec") or None
        initial_ingest = self.boolean(spec, "initialIngest", "spec", False)
        ignore_cache = self.boolean(spec, "ignoreCache", "spec", False)
        symlinks = self.enum(spec, "symlinks", "spec", SymlinkPolicy, m.DEFAULT_SYMLINKS)
        verify_checksum = self.boolean(spec, "verifyChecksum", "spec", False)
        if source is None or destination is None:
            return None
        return m.SyncJobSpec(
            source=source,
            destination=destination,
            operation=operation,
            delete_mode=delete_mode,
            filter=spec_filter,
            handler=handler,
            metadata=metadata,
            schedule=schedule,
            suspend=suspend,
            run_now=run_now,
            retry_failed=retry_failed,
            workers=workers,
            initial_ingest=initial_ingest,
            ignore_cache=ignore_cache,
            symlinks=symlinks,
            verify_checksum=verify_checksum,
        )

    def source(self, raw: object) -> m.Source | None:
        path = "spec.source"
        if raw is None:
            self.problem(path, "is required", "set source.path (with source.volume) or source.s3")
            return None
        source = self.obj(raw, path, _SOURCE_KEYS)
        has_path = source.get("path") is not None
        has_s3 = source.get("s3") is not None
        if has_path == has_s3:
            self.problem(
                path,
                "sets both path and s3" if has_path else "sets neither path nor s3",
                "set exactly one of source.path and source.s3",
            )
            return None
        if has_s3:
            if source.get("volume") is not None:
                self.problem(f"{path}.volume", "is only used with source.path", "remove source.volume")
            return self.s3(source["s3"])
        return self.path_source(source)

    def path_source(self, source: Mapping[str, Any]) -> m.PathSource | None:
        value = self.string(source, "path", "spec.source", required=True)
        volume = self.volume(source.get("volume"))
        if value is None:
            return None
        problem = source_path_problem(value)
        if problem is not None:
            why, fix = problem
            self.problem("spec.source.path", f"'{value}' {why}", fix)
            return None
        return m.PathSource(path=value, volume=volume)

    def volume(self, raw: object) -> Mapping[str, Any] | None:
        where = "spec.source.volume"
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.problem(
                where,
                f"must be an object, not {kind_of(raw)}",
                "write one volume source, e.g. persistentVolumeClaim",
            )
            return None
        self.add(volume_problems(raw, where))
        return {key: copy.deepcopy(raw[key]) for key in raw if key != "name"}

    def s3(self, raw: object) -> m.S3Source | None:
        path = "spec.source.s3"
        if not isinstance(raw, Mapping):
            self.obj(raw, path, _S3_KEYS)
            return None
        s3 = self.obj(raw, path, _S3_KEYS)
        bucket = self.string(s3, "bucket", path, required=True)
        if bucket is not None and not valid_bucket_name(bucket):  # else the engine refuses it at start
            self.problem(f"{path}.bucket", f"'{bucket}' is not a valid bucket name", BUCKET_NAME_FIX)
        endpoint = self.string(s3, "endpoint", path) or None
        insecure = self.boolean(s3, "insecure", path, False)
        if endpoint is not None:
            self.add(s3_endpoint_problems(endpoint, insecure=insecure, where=path))
        credentials = None
        if s3.get("credentialsSecret") is not None:
            secret_path = f"{path}.credentialsSecret"
            secret = self.obj(s3["credentialsSecret"], secret_path, _S3_SECRET_KEYS)
            secret_name = self.name(secret, "name", secret_path, what="Secret")
            credentials = m.S3CredentialsRef(
                secret_name=secret_name or "",
                access_key_id_key=self.object_key(
                    secret, "accessKeyIdKey", secret_path, m.DEFAULT_ACCESS_KEY_ID_KEY
                ),
                secret_access_key_key=self.object_key(
                    secret, "secretAccessKeyKey", secret_path, m.DEFAULT_SECRET_ACCESS_KEY_KEY
                ),
            )
        transfer = self.s3_transfer(s3.get("transfer"), f"{path}.transfer")
        if bucket is None:
            return None
        return m.S3Source(
            bucket=bucket,
            endpoint=endpoint,
            prefix=self.string(s3, "prefix", path) or "",
            region=self.string(s3, "region", path) or None,
            insecure=insecure,
            credentials=credentials,
            transfer=transfer,
        )

    def s3_transfer(self, raw: object, path: str) -> m.S3Transfer:
        transfer = self.obj(raw, path, _S3_TRANSFER_KEYS)

        def optional(key: str, minimum: int, maximum: int) -> int | None:
            if transfer.get(key) is None:
                return None
            return self.integer(transfer, key, path, minimum, minimum=minimum, maximum=maximum)

        return m.S3Transfer(
            parallel_threshold_mib=optional("parallelThresholdMiB", 1, 1024 * 1024),
            part_size_mib=optional("partSizeMiB", 1, 1024),
            parts_in_flight=optional("partsInFlight", 1, 64),
            list_page_size=optional("listPageSize", 1, 1000),
        )

    def destination(self, raw: object) -> m.Destination | None:
        path = "spec.destination"
        if raw is None:
            self.problem(path, "is required", "set destination.collection and destination.connectionSecret")
            return None
        destination = self.obj(raw, path, _DESTINATION_KEYS)
        collection = self.string(destination, "collection", path, required=True)
        if collection is not None and (why := check_collection(collection)) is not None:
            self.problem(
                f"{path}.collection",
                f"'{collection}' {why}",
                "use an absolute collection such as /tempZone/home/alice/ingest",
            )
            collection = None
        secret_path = f"{path}.connectionSecret"
        secret_name: str | None = None
        environment_key, password_key = m.DEFAULT_ENVIRONMENT_KEY, m.DEFAULT_PASSWORD_KEY
        if destination.get("connectionSecret") is None:
            self.problem(
                secret_path, "is required", "name the Secret holding irods_environment.json and password"
            )
        else:
            secret = self.obj(destination["connectionSecret"], secret_path, _CONNECTION_SECRET_KEYS)
            secret_name = self.name(secret, "name", secret_path, what="Secret")
            environment_key = self.object_key(secret, "environmentKey", secret_path, m.DEFAULT_ENVIRONMENT_KEY)
            password_key = self.object_key(secret, "passwordKey", secret_path, m.DEFAULT_PASSWORD_KEY)
        resource = self.string(destination, "resource", path) or None
        if collection is None or secret_name is None:
            return None
        return m.Destination(
            collection=collection,
            connection_secret=m.ConnectionSecretRef(secret_name, environment_key, password_key),
            resource=resource,
        )

    def filter(self, raw: object) -> m.Filter:
        path = "spec.filter"
        spec_filter = self.obj(raw, path, _FILTER_KEYS)
        types: set[FileType] = set()
        for index, value in enumerate(self.strings(spec_filter, "excludeTypes", path)):
            try:
                types.add(FileType(value))
            except ValueError:
                self.problem(
                    f"{path}.excludeTypes[{index}]",
                    f"{value!r} is not a file type",
                    f"use one of: {', '.join(FileType)}",
                )
        return m.Filter(
            exclude_types=frozenset(types),
            exclude_names=self.regexes(spec_filter, "excludeNames", path),
            exclude_directories=self.regexes(spec_filter, "excludeDirectories", path),
            include_names=self.regexes(spec_filter, "includeNames", path),
        )

    def handler(self, raw: object) -> m.HandlerRef | None:
        path = "spec.handler"
        if raw is None:
            return None
        handler = self.obj(raw, path, _HANDLER_KEYS)
        ref_path = f"{path}.configMapRef"
        if handler.get("configMapRef") is None:
            if isinstance(raw, Mapping):
                self.problem(ref_path, "is required", "name the ConfigMap holding the handler module")
            return None
        ref = self.obj(handler["configMapRef"], ref_path, _CONFIG_MAP_REF_KEYS)
        name = self.name(ref, "name", ref_path, what="ConfigMap")
        key = self.object_key(ref, "key", ref_path, m.DEFAULT_HANDLER_KEY)
        return None if name is None else m.HandlerRef(config_map_name=name, key=key)

    def metadata(self, raw: object) -> tuple[m.MetadataTemplate, ...]:
        path = "spec.metadata"
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem(
                path,
                f"must be a list, not {kind_of(raw)}",
                "write metadata as a list of {attribute, value, units}",
            )
            return ()
        templates: list[m.MetadataTemplate] = []
        for index, item in enumerate(raw):
            item_path = f"{path}[{index}]"
            entry = self.obj(item, item_path, _METADATA_KEYS)
            parts: dict[str, str | None] = {}
            for key in ("attribute", "value", "units"):
                text = self.string(entry, key, item_path, required=key != "units")
                if text is not None and (why := check_metadata_template(text)) is not None:
                    self.problem(
                        f"{item_path}.{key}",
                        why,
                        f"use only {{{'}, {'.join(sorted(METADATA_TEMPLATE_FIELDS))}}}; write {{{{ for a literal brace",
                    )
                parts[key] = text
            attribute, value = parts["attribute"], parts["value"]
            if attribute is not None and value is not None:
                templates.append(m.MetadataTemplate(attribute, value, parts["units"] or None))
        return tuple(templates)

    def workers(self, raw: object) -> m.Workers:
        path = "spec.workers"
        workers = self.obj(raw, path, _WORKERS_KEYS)
        image = self.string(workers, "image", path)
        if image is not None and (not image or any(ch.isspace() for ch in image)):
            self.problem(
                f"{path}.image",
                f"{image!r} is not an image reference",
                "write e.g. registry/irods-ingest:1.0",
            )
            image = None

        def bounded(key: str, default: int, minimum: int, maximum: int) -> int:
            return self.integer(workers, key, path, default, minimum=minimum, maximum=maximum)

        minimum = bounded("minReplicas", m.DEFAULT_MIN_REPLICAS, 0, m.MAX_REPLICAS_LIMIT)
        maximum = bounded("maxReplicas", m.DEFAULT_MAX_REPLICAS, 1, m.MAX_REPLICAS_LIMIT)
        self.add(replica_bounds_problems(minimum, maximum, path))
        pull_policy = None
        if workers.get("imagePullPolicy") is not None:
            pull_policy = self.enum(
                workers, "imagePullPolicy", path, ImagePullPolicy, ImagePullPolicy.IF_NOT_PRESENT
            )
        return m.Workers(
            image=image,
            image_pull_policy=pull_policy,
            min_replicas=minimum,
            max_replicas=maximum,
            concurrency=bounded("concurrency", m.DEFAULT_CONCURRENCY, 1, m.MAX_CONCURRENCY),
            resources=self.resources(workers.get("resources")),
            files_per_task=bounded("filesPerTask", m.DEFAULT_FILES_PER_TASK, 1, m.MAX_FILES_PER_TASK),
            task_timeout_seconds=bounded(
                "taskTimeoutSeconds", m.DEFAULT_TASK_TIMEOUT_SECONDS, 1, m.MAX_TASK_TIMEOUT_SECONDS
            ),
            max_retries=bounded("maxRetries", m.DEFAULT_MAX_RETRIES, 0, m.MAX_RETRIES_LIMIT),
            retry_backoff_seconds=bounded(
                "retryBackoffSeconds", m.DEFAULT_RETRY_BACKOFF_SECONDS, 0, m.MAX_RETRY_BACKOFF_SECONDS
            ),
        )

    def resources(self, raw: object) -> Mapping[str, Any]:
        resources = self.obj(raw, "spec.workers.resources", _RESOURCES_KEYS)
        return copy.deepcopy(dict(resources))
