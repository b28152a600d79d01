#!/usr/bin/env bash
# Runs every test: unit tests (no Apache) and integration tests against a real Apache under the
# event, worker and prefork MPMs. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh libapache2-mod-wsgi-py3 python3-cryptography
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest not found; using cargo test" >&2
    cargo test --release --lib
    cargo test --release --tests -- --test-threads 4
else
    cargo nextest run --release --no-fail-fast --test-threads 4
fi
