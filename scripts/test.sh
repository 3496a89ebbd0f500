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

status=0
# Doctests first (nextest does not run them), so the runner's summary is printed last.
echo "test.sh: cargo test --doc" >&2
cargo test --workspace --doc || status=1
if cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo nextest run" >&2
  cargo nextest run --workspace --all-targets --no-fail-fast || status=1
else
  echo "test.sh: cargo test" >&2
  cargo test --workspace --all-targets --no-fail-fast || status=1
fi

# Formatting last, so a formatting slip does not hide test results (it still fails the run).
if [[ "${MODELSIGN_SKIP_FMT:-0}" != 1 ]] && cargo fmt --version >/dev/null 2>&1; then
  if ! cargo fmt --all -- --check >"${TMPDIR:-/tmp}/modelsign-fmt.diff" 2>&1; then
    echo "test.sh: cargo fmt --check failed (run cargo fmt); files:" >&2
    grep '^Diff in' "${TMPDIR:-/tmp}/modelsign-fmt.diff" | sed 's/:[0-9]*:$//' | sort -u >&2 || true
    status=1
  fi
fi

if ((status == 0)); then
  echo "test.sh: all passed in $((SECONDS - start)) s" >&2
else
  echo "test.sh: FAILED after $((SECONDS - start)) s" >&2
fi
exit "$status"
