# syntax=docker/dockerfile:1
# The ingest worker: the engine and `irods-ingest worker`, started by the worker Deployments the
# operator creates (their `command` is `irods-ingest worker --job ...`). Build from the
# repository root:
#
#   docker build -f images/worker.Dockerfile -t ghcr.io/irods-ingest/irods-ingest-worker:0.1.0 .
#
# Event-handler modules arrive through Redis and run inside this image: they may import the
# incumbent's `irods_capability_automated_ingest.core/.utils` (provided by the engine) and
# python-irodsclient (`irods`). A handler that needs more packages runs in a derived image:
#
#   FROM ghcr.io/irods-ingest/irods-ingest-worker:0.1.0
#   USER 0
#   RUN pip install --no-cache-dir requests==2.32.3
#   USER 10001:10001
#
# and `spec.workers.image` of the SyncJob names it (docs/images.md).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- builder: wheels of the engine and its dependencies
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# A C compiler builds the native first-sync listing (irods_ingest._listing) into the wheel; it
# stays in this stage. The slim image already has Python's headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY worker/ worker/
COPY operator/ operator/
RUN python -m pip wheel --wheel-dir /wheels .

# ---- final: a virtualenv (with pip, for derived handler images), run as a numeric user
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="irods-ingest-worker" \
      org.opencontainers.image.description="iRODS ingest worker: scans sources and syncs files into iRODS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="BSD-3-Clause"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels irods-ingest-operator \
    && /opt/venv/bin/irods-ingest --version \
    && /opt/venv/bin/python -c "import irods_ingest._listing"
# Prometheus metrics (the worker Deployment's "metrics" port).
EXPOSE 9102
USER 10001:10001
ENTRYPOINT ["irods-ingest"]
CMD ["worker", "--help"]
