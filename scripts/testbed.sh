#!/usr/bin/env bash
# Installs the test bed: real registries and peer tools the integration tests run against.
#
#   scripts/testbed.sh            # install into ${MODELSIGN_TESTBED:-<repo>/.testbed}
#   . "$MODELSIGN_TESTBED/env"    # PATH and MODELSIGN_TESTBED for the tests
#
# Idempotent: every step checks a stamp and its outputs first, so a warm run takes a second.
# Needs root (apt-get), Debian 12, and the package registries only. See docs/TESTING.md.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TB="${MODELSIGN_TESTBED:-$REPO/.testbed}"
mkdir -p "$TB"
TB="$(cd "$TB" && pwd)"
export DEBIAN_FRONTEND=noninteractive

log() { echo "testbed: $*" >&2; }
die() { echo "testbed: ERROR: $*" >&2; exit 1; }
# stamp_ok NAME KEY: the step NAME already ran with this KEY
stamp_ok() { [[ -f "$TB/stamps/$1" && "$(cat "$TB/stamps/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$TB/stamps"; printf '%s' "$2" >"$TB/stamps/$1"; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# ---------------------------------------------------------------------------
# 1. System packages (Debian 12): distribution 2.8, skopeo, htpasswd, curl, jq, time, openssl,
#    SoftHSM2 and pkcs11-tool (opensc).
# ---------------------------------------------------------------------------
# command-or-file : package
SYSTEM_NEEDS=(
  "docker-registry:docker-registry"
  "skopeo:skopeo"
  "htpasswd:apache2-utils"
  "curl:curl"
  "jq:jq"
  "/usr/bin/time:time"
  "openssl:openssl"
  "dpkg-deb:dpkg"
  "/usr/share/keyrings/debian-archive-keyring.gpg:debian-archive-keyring"
  "/etc/ssl/certs/ca-certificates.crt:ca-certificates"
  # PKCS#11: SoftHSM2 (a software token, /usr/lib/softhsm/libsofthsm2.so) and pkcs11-tool
  "/usr/lib/softhsm/libsofthsm2.so:softhsm2"
  "pkcs11-tool:opensc"
)
missing=()
for need in "${SYSTEM_NEEDS[@]}"; do
  what="${need%%:*}" pkg="${need##*:}"
  if [[ "$what" == /* ]]; then [[ -e "$what" ]] && continue
  else command -v "$what" >/dev/null 2>&1 && continue; fi
  missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt_install() { $SUDO apt-get install -y -q --no-install-recommends "$@" >"$TB/apt-install.log" 2>&1; }
  if ! apt_install "${missing[@]}"; then
    log "apt-get update (package lists missing or stale)"
    $SUDO apt-get update -q >"$TB/apt-update.log" 2>&1 || { cat "$TB/apt-update.log" >&2; die "apt-get update failed"; }
    apt_install "${missing[@]}" || { tail -30 "$TB/apt-install.log" >&2; die "apt-get install ${missing[*]} failed"; }
  fi
fi

# ---------------------------------------------------------------------------
# 2. Packages from newer suites, unpacked into the test bed (never installed into the system):
#    oras (sid), cosign (trixie), Go 1.23 and the Go sources of the registries we build.
#    A private apt state directory; the mirror URI is the one the system's own sources name.
# ---------------------------------------------------------------------------
DEBS=(
  oras/sid
  cosign/trixie
  golang-1.23-go/bookworm-backports
  golang-1.23-src/bookworm-backports
  golang-github-google-go-containerregistry-dev/trixie
  golang-github-cue-labs-oci-dev/trixie
  golang-github-opencontainers-image-spec-dev/bookworm-backports
  golang-github-opencontainers-go-digest-dev/trixie
)
ROOT="$TB/root"
mirror_uri() {
  local uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    # first deb822 stanza that is not the security archive
    uri="$(awk 'BEGIN{RS=""} /Types:[^\n]*deb/ && !/debian-security/ {
                 if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { s=substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", s); print s; exit } }' \
            /etc/apt/sources.list.d/debian.sources)"
  fi
  if [[ -z "$uri" ]]; then
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
           | awk '$1=="deb" && !/security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' | head -n1)"
  fi
  [[ -n "$uri" ]] || die "cannot find the Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  printf '%s' "$uri"
}
# private_apt_init: $APTDIR with its own sources.list (bookworm-backports, trixie, sid), the
# PAPT command (apt-get on that state only) and fresh-enough package lists.
private_apt_init() {
  APTDIR="$TB/apt"
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$TB/debs"
  uri="$(mirror_uri)"
  {
    for suite in bookworm-backports trixie sid; do
      echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main"
    done
  } >"$APTDIR/sources.list"
  PAPT=(apt-get -q
    -o "Dir::Etc::SourceList=$APTDIR/sources.list"
    -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "Dir::State::status=/dev/null"
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    -o "Acquire::Languages=none"
    -o "Acquire::Check-Valid-Until=false"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1")
  if ! ls "$APTDIR/lists/"*_sid_*Packages* >/dev/null 2>&1 || ! ls "$APTDIR/lists/"*_trixie_*Packages* >/dev/null 2>&1; then
    log "private apt update (bookworm-backports, trixie, sid)"
    "${PAPT[@]}" update >"$TB/apt-private-update.log" 2>&1 || { tail -20 "$TB/apt-private-update.log" >&2; die "private apt-get update failed"; }
  fi
}
debs_key="${DEBS[*]}"
if stamp_ok debs "$debs_key" && [[ -x "$ROOT/usr/bin/oras" && -x "$ROOT/usr/bin/cosign" && -x "$ROOT/usr/lib/go-1.23/bin/go" ]]; then
  :
else
  private_apt_init
  log "downloading ${#DEBS[@]} packages from newer suites"
  rm -f "$TB/debs/"*.deb
  if ! (cd "$TB/debs" && "${PAPT[@]}" download "${DEBS[@]}" >"$TB/apt-private-download.log" 2>&1); then
    log "download failed; refreshing the private package lists"
    "${PAPT[@]}" update >"$TB/apt-private-update.log" 2>&1 || { tail -20 "$TB/apt-private-update.log" >&2; die "private apt-get update failed"; }
    (cd "$TB/debs" && "${PAPT[@]}" download "${DEBS[@]}" >"$TB/apt-private-download.log" 2>&1) \
      || { tail -20 "$TB/apt-private-download.log" >&2; die "apt-get download failed"; }
  fi
  rm -rf "$ROOT"; mkdir -p "$ROOT"
  for deb in "$TB/debs/"*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
  rm -rf "$TB/debs" "$APTDIR/cache/archives/"*.deb
  stamp_set debs "$debs_key"
fi
mkdir -p "$TB/bin"
ln -sfn ../root/usr/bin/oras "$TB/bin/oras"
ln -sfn ../root/usr/bin/cosign "$TB/bin/cosign"

# ---------------------------------------------------------------------------
# 3. Our two small Go registries (sources in testdata/registries/), GOPATH mode, offline.
# ---------------------------------------------------------------------------
GOROOT_TB="$ROOT/usr/lib/go-1.23"
go_key="$(cat "$REPO"/testdata/registries/*/main.go | sha256sum | cut -c1-16) $debs_key"
if stamp_ok go "$go_key" && [[ -x "$TB/bin/gcr-registry" && -x "$TB/bin/cue-registry" ]]; then
  :
else
  GOSRC="$TB/gosrc"
  rm -rf "$GOSRC"; mkdir -p "$GOSRC/src/modelsign-testbed"
  cp -r "$REPO"/testdata/registries/*/ "$GOSRC/src/modelsign-testbed/"
  for prog in gcr-registry cue-registry; do
    log "go build $prog"
    (cd "$GOSRC/src/modelsign-testbed/$prog" &&
      env GOROOT="$GOROOT_TB" GO111MODULE=off GOTOOLCHAIN=local GOPROXY=off GOFLAGS= \
          GOPATH="$GOSRC:$ROOT/usr/share/gocode" GOCACHE="$TB/gocache" CGO_ENABLED=0 \
          "$GOROOT_TB/bin/go" build -trimpath -o "$TB/bin/$prog.tmp" . ) || die "go build $prog failed"
    mv -f "$TB/bin/$prog.tmp" "$TB/bin/$prog"
  done
  stamp_set go "$go_key"
fi

# ---------------------------------------------------------------------------
# 3b. A local Sigstore stack for the keyless tests (issue 7): Fulcio, Rekor v2 (rekor-tiles, its
#     POSIX back end) and the timestamp authority, built from Debian sid's Go source packages with
#     sid's Go; a certificate-transparency log for Fulcio's SCTs (our testdata/sigstore-stack/
#     ct-log/main.go: Trillian with its in-memory storage + certificate-transparency-go's CTFE);
#     cosign 3 (sid's binary package) as the peer that signs and verifies keyless.
#     testdata/sigstore-stack/debs.txt lists the packages; shims/ stands in for the few imports
#     Debian does not package (see its README.md). Build log: $TB/sigstore/build.log.
# ---------------------------------------------------------------------------
SIG="$TB/sigstore"
SIG_SRC="$REPO/testdata/sigstore-stack"
mapfile -t SIG_DEBS < <(grep -v '^#' "$SIG_SRC/debs.txt" | grep .)
sig_key="$({ echo tsa-metrics-on-loopback; cat "$SIG_SRC/debs.txt"; find "$SIG_SRC/shims" "$SIG_SRC/ct-log" -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)"
SIG_BINS=(fulcio rekor-tiles-server timestamp-server ct-log cosign3)
sig_ready() { local b; for b in "${SIG_BINS[@]}"; do [[ -x "$SIG/bin/$b" ]] || return 1; done; }
if stamp_ok sigstore "$sig_key" && sig_ready; then
  :
else
  private_apt_init
  SROOT="$SIG/root"
  rm -rf "$SROOT" "$SIG/debs" "$SIG/bin" "$SIG/shims-gopath" "$SIG/ct-gopath"
  mkdir -p "$SROOT" "$SIG/debs" "$SIG/bin"
  : >"$SIG/build.log"
  # sig_fetch PKG...: download into $SIG/debs and unpack into $SROOT
  sig_fetch() {
    if ! (cd "$SIG/debs" && "${PAPT[@]}" download "$@" >>"$SIG/build.log" 2>&1); then
      log "sigstore: download failed; refreshing the private package lists"
      "${PAPT[@]}" update >"$TB/apt-private-update.log" 2>&1 || { tail -20 "$TB/apt-private-update.log" >&2; die "private apt-get update failed"; }
      (cd "$SIG/debs" && "${PAPT[@]}" download "$@" >>"$SIG/build.log" 2>&1) \
        || { tail -20 "$SIG/build.log" >&2; die "sigstore: apt-get download failed (see $SIG/build.log)"; }
    fi
    local deb
    for deb in "$SIG/debs/"*.deb; do dpkg-deb -x "$deb" "$SROOT"; done
    rm -f "$SIG/debs/"*.deb
  }
  # sig_go NAME GOPATH PACKAGE: one `go build` (GOPATH mode, offline, niced: the cores are shared)
  sig_go() {
    log "go build $1 (sigstore stack)"
    echo "== go build $1 ($3)" >>"$SIG/build.log"
    (cd "$SROOT" &&
      nice -n 10 env GOROOT="$SROOT/usr/lib/go-1.27" GO111MODULE=off GOTOOLCHAIN=local GOPROXY=off GOFLAGS= \
        GOPATH="$2" GOCACHE="$TB/gocache" CGO_ENABLED=0 \
        "$SROOT/usr/lib/go-1.27/bin/go" build -trimpath -o "$SIG/bin/$1.tmp" "$3") >>"$SIG/build.log" 2>&1 \
      && mv -f "$SIG/bin/$1.tmp" "$SIG/bin/$1"
  }
  sig_build() {
    local gocode="$SROOT/usr/share/gocode"
    cp -r "$SIG_SRC/shims/overlay/." "$gocode/src/"
    # The timestamp server serves metrics on a fixed ":2112" (no flag): every test's TSA would
    # fight for it. Bind it to a free loopback port instead (the tests read no metrics).
    local prom="$gocode/src/github.com/sigstore/timestamp-authority/v2/pkg/server/prometheus.go"
    if grep -q 'Addr: *":2112"' "$prom"; then
      sed -i 's/Addr: *":2112"/Addr: "127.0.0.1:0"/' "$prom"
    elif ! grep -q 'Addr: "127.0.0.1:0"' "$prom"; then
      log "sigstore: WARNING: $prom no longer says \":2112\"; parallel timestamp servers may collide"
    fi
    rm -rf "$SIG/shims-gopath"; mkdir -p "$SIG/shims-gopath"; cp -r "$SIG_SRC/shims/gopath/src" "$SIG/shims-gopath/"
    # Fulcio alone sees the shims first (go-grpc-middleware v1 there; rekor-tiles needs Debian's v2).
    sig_go fulcio "$SIG/shims-gopath:$gocode" github.com/sigstore/fulcio &&
      sig_go rekor-tiles-server "$gocode" github.com/sigstore/rekor-tiles/cmd/rekor-server/posix &&
      sig_go timestamp-server "$gocode" github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server &&
      rm -rf "$SIG/ct-gopath" && mkdir -p "$SIG/ct-gopath/src/modelsign-testbed" &&
      cp -r "$SIG_SRC/ct-log" "$SIG/ct-gopath/src/modelsign-testbed/" &&
      sig_go ct-log "$SIG/ct-gopath:$gocode" modelsign-testbed/ct-log
  }
  log "sigstore: downloading ${#SIG_DEBS[@]} packages from sid (Go 1.27, cosign 3, Go sources)"
  sig_fetch "${SIG_DEBS[@]}"
  if ! sig_build; then
    log "sigstore: build failed with the listed packages (sid moved on?); adding their whole Depends closure"
    mapfile -t closure < <(apt-cache "${PAPT[@]:1}" depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "${SIG_DEBS[@]%%/*}" 2>/dev/null \
      | grep -E '^golang-.+-dev$' | sort -u)
    sig_fetch "${closure[@]}"
    sig_build || { tail -40 "$SIG/build.log" >&2; die "sigstore stack: go build failed (see $SIG/build.log)"; }
  fi
  cp "$SROOT/usr/bin/cosign" "$SIG/bin/cosign3.tmp" && mv -f "$SIG/bin/cosign3.tmp" "$SIG/bin/cosign3"
  "$SIG/bin/cosign3" version >>"$SIG/build.log" 2>&1 || die "cosign 3 (sid) does not run here"
  rm -rf "$SROOT" "$SIG/debs" "$SIG/shims-gopath" "$SIG/ct-gopath" # ~1 GB of sources; the binaries are what is kept
  stamp_set sigstore "$sig_key"
fi
for b in "${SIG_BINS[@]}"; do ln -sfn "../sigstore/bin/$b" "$TB/bin/$b"; done

# ---------------------------------------------------------------------------
# 4. Python venv: model_signing (OpenSSF reference signer), pyopenssl it needs, cryptography
#    for scripts/token-server.py.
# ---------------------------------------------------------------------------
PY_REQS=(model-signing==1.1.1 pyopenssl cryptography)
py_key="${PY_REQS[*]}"
VENV="$TB/venv"
if stamp_ok venv "$py_key" && [[ -x "$VENV/bin/model_signing" ]] && "$VENV/bin/python" -c 'import OpenSSL, cryptography' 2>/dev/null; then
  :
else
  log "python venv + pip install ${PY_REQS[*]}"
  rm -rf "$VENV"
  PY="${PYTHON:-python3}"
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    log "apt-get install python3-venv"
    $SUDO apt-get install -y -q --no-install-recommends python3-venv >"$TB/apt-install.log" 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1; $SUDO apt-get install -y -q --no-install-recommends python3-venv >"$TB/apt-install.log" 2>&1; } \
      || die "cannot install python3-venv"
    /usr/bin/python3 -m venv "$VENV" || die "python3 -m venv failed"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_REQS[@]}" >"$TB/pip.log" 2>&1 \
    || { tail -30 "$TB/pip.log" >&2; die "pip install failed"; }
  "$VENV/bin/model_signing" --help >/dev/null || die "model_signing does not run"
  stamp_set venv "$py_key"
fi
ln -sfn ../venv/bin/model_signing "$TB/bin/model_signing"

# 4b. cyclonedx-python-lib with JSON-schema validation, in the same venv: the peer that
#     validates the CycloneDX ML-BOM `modelsign attest` writes.
CDX_REQ="cyclonedx-python-lib[json-validation]==11.12.0"
if stamp_ok cyclonedx "$CDX_REQ" && "$VENV/bin/python" -c 'import cyclonedx.validation.json, jsonschema' 2>/dev/null; then
  :
else
  log "pip install $CDX_REQ"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$CDX_REQ" >"$TB/pip-cyclonedx.log" 2>&1 \
    || { tail -30 "$TB/pip-cyclonedx.log" >&2; die "pip install $CDX_REQ failed"; }
  "$VENV/bin/python" -c 'import cyclonedx.validation.json, jsonschema' || die "cyclonedx-python-lib does not import"
  stamp_set cyclonedx "$CDX_REQ"
fi
ln -sfn ../venv/bin/python "$TB/bin/testbed-python"

# 4c. python-tuf (an independent TUF implementation) in the same venv: tests build real TUF
#     repositories with it (testdata/tuf/tuf_repo.py) for `modelsign trust update`.
TUF_REQ="tuf==7.0.1"
if stamp_ok tuf "$TUF_REQ" && "$VENV/bin/python" -c 'import tuf.api.metadata, securesystemslib.signer' 2>/dev/null; then
  :
else
  log "pip install $TUF_REQ"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$TUF_REQ" >"$TB/pip-tuf.log" 2>&1 \
    || { tail -30 "$TB/pip-tuf.log" >&2; die "pip install $TUF_REQ failed"; }
  "$VENV/bin/python" -c 'import tuf.api.metadata, securesystemslib.signer' || die "python-tuf does not import"
  stamp_set tuf "$TUF_REQ"
fi

# 4b. modelpack-client (a Python client that pushes CNCF ModelPack artifacts with tar layers),
#     in a venv of its own so that adding it never rebuilds the one above.
MP_REQS=(modelpack-client==0.1.0)
mp_key="${MP_REQS[*]}"
MP_VENV="$TB/venv-modelpack"
if stamp_ok modelpack "$mp_key" && [[ -x "$MP_VENV/bin/modelpack" ]]; then
  :
else
  log "python venv + pip install ${MP_REQS[*]}"
  rm -rf "$MP_VENV"
  "${PYTHON:-python3}" -m venv "$MP_VENV" || die "python3 -m venv failed"
  "$MP_VENV/bin/python" -m pip install -q --disable-pip-version-check "${MP_REQS[@]}" >"$TB/pip-modelpack.log" 2>&1 \
    || { tail -30 "$TB/pip-modelpack.log" >&2; die "pip install modelpack-client failed"; }
  "$MP_VENV/bin/modelpack" --help >/dev/null || die "modelpack (modelpack-client) does not run"
  stamp_set modelpack "$mp_key"
fi
ln -sfn ../venv-modelpack/bin/modelpack "$TB/bin/modelpack"

# ---------------------------------------------------------------------------
# 5. The environment file the tests and scripts/test.sh source.
# ---------------------------------------------------------------------------
cat >"$TB/env.tmp" <<EOF
# written by scripts/testbed.sh
export MODELSIGN_TESTBED="$TB"
export PATH="$TB/bin:\$PATH"
EOF
mv -f "$TB/env.tmp" "$TB/env"

# Quick sanity check of every tool (cheap; catches a half-installed tree).
for tool in softhsm2-util pkcs11-tool docker-registry skopeo htpasswd "$TB/bin/oras" "$TB/bin/cosign" "$TB/bin/gcr-registry" "$TB/bin/cue-registry" "$TB/bin/model_signing" \
  "$TB/bin/fulcio" "$TB/bin/rekor-tiles-server" "$TB/bin/timestamp-server" "$TB/bin/ct-log" "$TB/bin/cosign3"; do
  command -v "$tool" >/dev/null 2>&1 || die "missing after install: $tool"
done
log "ready in $TB (source $TB/env)"
