#!/usr/bin/env bash
# Runs file-processor with the original script's options:  ./run.sh --input FILE
# (builds the release binary first if needed). Unknown options: a message and exit 1.
set -euo pipefail
repo=$(cd "$(dirname "$0")" && pwd)

usage() { echo "usage: ./run.sh --input FILE" >&2; }

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --input)
      if [ $# -lt 2 ]; then echo "run.sh: --input needs a FILE" >&2; usage; exit 1; fi
      args+=(--input "$2"); shift 2 ;;
    --input=*) args+=("$1"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option: $1" >&2; usage; exit 1 ;;
  esac
done

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
exec "$repo/target/release/file-processor" "${args[@]}"
