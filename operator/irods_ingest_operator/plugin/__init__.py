"""``kubectl ingest``: a kubectl plugin for SyncJob users who have namespace RBAC only.

It lists a job's failed files, asks for a retry and summarises a job — from what the operator
writes to the API server (the SyncJob's status and the ``<job>-failures`` ConfigMap), never
from Redis, so a user needs no Redis credential: ``get`` on syncjobs and configmaps, and
``patch`` on syncjobs for ``retry``.

It talks to the API server through ``kubectl`` itself (:mod:`.kubectl`): the plugin is started
by kubectl, so kubectl is there, and every way the user's kubectl authenticates (exec
credential plugins, OIDC, client certificates, proxies, ``$KUBECONFIG`` lists, ``--context``,
the context's namespace) works unchanged — without the kubernetes Python client, which the
base distribution does not install. Modules: :mod:`.cli` (commands), :mod:`.kubectl` (the one
adapter), :mod:`.views` (pure rendering).
"""
