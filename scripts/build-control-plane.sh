#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager v1.20.2 for the test suite's local control plane.
#
# Source: Debian bookworm's `kubernetes` source package, built with Debian's Go (DESIGN.md §6).
# Output: ${IRODS_INGEST_CACHE:-~/.cache/irods-ingest-operator}/k8s-v1.20.2/bin/{kube-apiserver,kube-controller-manager}
#
# Idempotent: exits at once when both cached binaries run. The ~2.4 GB build tree lives in a
# temporary directory that is always removed; binaries are written to a temporary name and
# renamed, so an interrupted build never leaves a half-filled cache. About 5 minutes cold on 2 cores.
# Also installs the other test-platform packages (etcd-server, jq, rsync, openssl) when missing.
# The system's apt configuration is never modified: source lookups use a private apt state.
set -euo pipefail

readonly K8S_VERSION=1.20.2
readonly CACHE_ROOT="${IRODS_INGEST_CACHE:-$HOME/.cache/irods-ingest-operator}"
readonly OUT="$CACHE_ROOT/k8s-v$K8S_VERSION/bin"
readonly BINARIES=(kube-apiserver kube-controller-manager)
readonly APT_PACKAGES=(golang-go rsync jq etcd-server openssl patch make)
# The vendored reflect2 v1.0.1 crashes the apiserver on the first custom-resource write
# under Go >= 1.18; Debian's 1.0.2 replaces it.
readonly REFLECT2_DEB=golang-github-modern-go-reflect2-dev

log() { printf '[build-control-plane] %s\n' "$*"; }

binaries_work() {
    local bin
    for bin in "${BINARIES[@]}"; do
        [ -x "$OUT/$bin" ] && "$OUT/$bin" --version >/dev/null 2>&1 || return 1
    done
}

missing_packages() {
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
    done
}

install_packages() {
    local missing
    missing=$(missing_packages)
    if [ -z "$missing" ]; then
        log "apt packages present: ${APT_PACKAGES[*]}"
        return
    fi
    log "installing apt packages: ${missing//$'\n'/ }"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

install_packages
if binaries_work; then
    log "cached: $OUT ($("$OUT/kube-apiserver" --version))"
    exit 0
fi

[ -r /etc/apt/sources.list.d/debian.sources ] || {
    log "error: /etc/apt/sources.list.d/debian.sources not found (a Debian 12 system is expected)"
    exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/irods-ingest-k8s-build.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that the EXIT trap runs on interruption too
log "build tree: $WORK"

# A private apt state whose sources are the system's Debian sources with deb-src added.
APT_DIR="$WORK/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/sources.list.d"
sed 's/^Types:.*$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources \
    >"$APT_DIR/sources.list.d/debian.sources"
APT_OPTS=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
)
# As root, apt downloads as the _apt user, who cannot write into our private (mktemp, 0700) state.
[ "$(id -u)" -ne 0 ] || APT_OPTS+=(-o "APT::Sandbox::User=root")
log "fetching package indexes (private apt state)"
apt-get "${APT_OPTS[@]}" update -qq

cd "$WORK"
log "downloading source package kubernetes and $REFLECT2_DEB"
apt-get "${APT_OPTS[@]}" source --download-only -qq kubernetes >/dev/null
apt-get "${APT_OPTS[@]}" download -qq "$REFLECT2_DEB" >/dev/null

log "unpacking and applying debian/patches"
# bookworm's package is versioned 1.20.5+really1.20.2; its tree unpacks as kubernetes-1.20.2/.
tar xzf kubernetes_*.orig.tar.gz
tar xJf kubernetes_*.debian.tar.xz
SRC="$WORK/kubernetes-$K8S_VERSION"
[ -f "$SRC/Makefile" ] || { log "error: expected the v$K8S_VERSION source tree at $SRC"; exit 1; }
while read -r patch_name; do
    case "$patch_name" in '' | '#'*) continue ;; esac
    patch -d "$SRC" -p1 -s <"debian/patches/$patch_name"
done <debian/patches/series

log "replacing vendored reflect2 with Debian's $REFLECT2_DEB"
dpkg-deb -x "$REFLECT2_DEB"_*.deb reflect2
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
cp -r reflect2/usr/share/gocode/src/github.com/modern-go/reflect2 "$SRC/vendor/github.com/modern-go/reflect2"
rm -f "$SRC/vendor/github.com/modern-go/reflect2/go.mod"

# The tarball is not a git checkout: give the build its version explicitly so that
# `--version` and the apiserver's /version report v1.20.2.
cat >"$WORK/version.env" <<EOF
KUBE_GIT_VERSION='v$K8S_VERSION'
KUBE_GIT_MAJOR='${K8S_VERSION%%.*}'
KUBE_GIT_MINOR='$(echo "$K8S_VERSION" | cut -d. -f2)'
KUBE_GIT_COMMIT=''
KUBE_GIT_TREE_STATE='archive'
EOF

log "compiling (GOPATH mode via make; about 5 minutes on 2 cores)"
mkdir -p "$WORK/home"
(
    cd "$SRC"
    export GOPROXY=off GOFLAGS='' CGO_ENABLED=0 HOME="$WORK/home" GOCACHE="$WORK/home/go-cache" \
        KUBE_GIT_VERSION_FILE="$WORK/version.env"
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
)

mkdir -p "$OUT"
rm -f "$OUT"/.*.tmp.*  # leftovers of an interrupted earlier run
for bin in "${BINARIES[@]}"; do
    tmp="$OUT/.$bin.tmp.$$"
    cp "$SRC/_output/bin/$bin" "$tmp"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$OUT/$bin"
done
binaries_work || { log "error: built binaries do not run"; exit 1; }
log "done: $OUT ($("$OUT/kube-apiserver" --version))"
