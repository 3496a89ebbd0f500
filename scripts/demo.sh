#!/usr/bin/env bash
# Builds modelsign, makes a small sample model, pushes it to an OCI layout folder (and to a
# local registry on loopback when `docker-registry` is installed), inspects it, pulls one
# component, signs it from its manifest and verifies one component. Everything happens
# under a temporary folder that is removed at the end.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

echo "==> cargo build --release" >&2
cargo build --release --quiet
MS="$REPO/target/release/modelsign"

WORK="$(mktemp -d)"
REGISTRY_PID=""
cleanup() {
  [[ -n "$REGISTRY_PID" ]] && kill "$REGISTRY_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> a sample model in $WORK/tiny-llm" >&2
mkdir -p "$WORK/tiny-llm/tokenizer"
printf '{"architectures":["LlamaForCausalLM"],"torch_dtype":"bfloat16"}\n' >"$WORK/tiny-llm/config.json"
head -c 4194304 /dev/urandom >"$WORK/tiny-llm/model.safetensors"
printf '{"version":"1.0"}\n' >"$WORK/tiny-llm/tokenizer/tokenizer.json"
printf '# tiny-llm\nA demo model.\n' >"$WORK/tiny-llm/README.md"

run() { echo "+ modelsign $*" >&2; "$MS" "$@"; }

echo "==> push to an OCI layout folder" >&2
run push "oci:$WORK/layout:v1" "$WORK/tiny-llm" --version 1.0
run inspect "oci:$WORK/layout:v1"
run pull "oci:$WORK/layout:v1" -o "$WORK/pulled" --include 'tokenizer/*'
ls -R "$WORK/pulled"

echo "==> sign it from its manifest, verify one component" >&2
run keygen -o "$WORK/signer"
run sign "oci:$WORK/layout:v1" --key "$WORK/signer.key"
run discover "oci:$WORK/layout:v1"
run verify --offline "oci:$WORK/layout:v1" --key "$WORK/signer.pub" --component config.json

if command -v docker-registry >/dev/null 2>&1; then
  echo "==> push to a local registry (distribution on loopback)" >&2
  mkdir -p "$WORK/registry"
  cat >"$WORK/registry/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
http:
  addr: 127.0.0.1:0
YAML
  docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
  REGISTRY_PID=$!
  addr=""
  for _ in $(seq 100); do
    addr="$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/registry/log" | head -1 | sed 's/listening on //' || true)"
    [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { cat "$WORK/registry/log"; exit 1; }
  run push --plain-http "$addr/demo/tiny-llm:v1" "$WORK/tiny-llm"
  run inspect --plain-http "$addr/demo/tiny-llm:v1"
  run pull --plain-http "$addr/demo/tiny-llm:v1" -o "$WORK/pulled-registry" --include model.safetensors
  cmp "$WORK/tiny-llm/model.safetensors" "$WORK/pulled-registry/model.safetensors" && echo "component identical" >&2
else
  echo "==> docker-registry is not installed (scripts/testbed.sh installs it): skipped the registry part" >&2
fi
echo "==> demo done" >&2
