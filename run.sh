#!/usr/bin/env bash
# Runs file-processor, building the release binary first if needed:
#   ./run.sh [--watch] [OPTIONS]    the daemon on watch_dir/ (the default)
#   ./run.sh --input FILE [OPTIONS] one file, once
# Options are file-processor's own (./run.sh --help); a wrong one is one error line, exit 2.
set -euo pipefail
repo=$(cd "$(dirname "$0")" && pwd)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
exec "$repo/target/release/file-processor" "$@"
