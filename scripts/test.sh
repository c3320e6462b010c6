#!/usr/bin/env bash
# Installs what is missing, brings up the Docker lab, and runs every check and test.
# Run as root on Debian 12:   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "test: cargo not found; install Rust >= 1.85 with rustup (https://rustup.rs), then re-run" >&2
  exit 1
fi

scripts/lab.sh up

echo "test: cargo fmt --check" >&2
cargo fmt --all -- --check
echo "test: cargo clippy" >&2
cargo clippy --all-targets --locked -- -D warnings
echo "test: cargo test" >&2
cargo test --all-targets --locked
