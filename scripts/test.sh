#!/usr/bin/env bash
# The project's test command (README, CI): installs the test bed, then runs the whole Rust suite
# with the test bed mandatory (a test that needs a registry fails instead of skipping).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

start=$SECONDS
"$REPO/scripts/testbed.sh"
# shellcheck disable=SC1090,SC1091
. "${MODELSIGN_TESTBED:-$REPO/.testbed}/env"
echo "test.sh: test bed ready in $((SECONDS - start)) s" >&2

export MODELSIGN_REQUIRE_TESTBED=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if cargo fmt --version >/dev/null 2>&1; then
  echo "test.sh: cargo fmt --check" >&2
  cargo fmt --all -- --check
fi

# Doctests first (nextest does not run them), so the runner's summary is the last thing printed.
echo "test.sh: cargo test --doc" >&2
cargo test --workspace --doc
if cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo nextest run" >&2
  cargo nextest run --workspace --all-targets --no-fail-fast
else
  echo "test.sh: cargo test" >&2
  cargo test --workspace --all-targets --no-fail-fast
fi
echo "test.sh: all tests passed in $((SECONDS - start)) s" >&2
