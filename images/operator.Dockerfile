# syntax=docker/dockerfile:1
# The SyncJob operator (kopf), as the chart runs it. Build from the repository root:
#
#   docker build -f images/operator.Dockerfile -t ghcr.io/irods-ingest/irods-ingest-operator:0.1.0 .
#
# The base is pinned to a patch release; pin it by digest too in CI (docs/images.md):
#   --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- builder: wheels of the project and every dependency (nothing compiled in the final image)
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
RUN python -m pip wheel --wheel-dir /wheels ".[operator]"

# ---- final: a virtualenv without pip, owned by root, run as an unprivileged numeric user
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="irods-ingest-operator" \
      org.opencontainers.image.description="Kubernetes operator reconciling SyncJobs into iRODS ingest runs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="BSD-3-Clause"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-index \
       --find-links /wheels "irods-ingest-operator[operator]" \
    && /opt/venv/bin/irods-ingest-operator --version
# Liveness (kopf) and Prometheus metrics.
EXPOSE 8080 9101
USER 10001:10001
ENTRYPOINT ["irods-ingest-operator"]
