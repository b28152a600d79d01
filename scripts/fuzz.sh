#!/usr/bin/env bash
# Fuzzes the daemon protocol decoder with libFuzzer (cargo-fuzz). Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
RUSTC_BOOTSTRAP=1 cargo fuzz run decode --fuzz-dir . -- -max_total_time="${1:-60}" -max_len=4096
