#!/usr/bin/env bash
# Benchmarks behind `make bench` (release build, data generated deterministically, page cache
# warm). Each figure is a ratio against a reference tool timed in the same run; peak memory
# comes from /usr/bin/time -v. Needs: hyperfine, /usr/bin/time, python3, xsv (installed with
# cargo if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

LOG_BYTES=${LOG_BYTES:-$((1 << 30))}
CSV_BYTES=${CSV_BYTES:-$((256 << 20))}
RUNS=${RUNS:-5}
DATA=bench/data
OUT=bench/out
WD=$OUT/watch_dir
BIN=target/release/file-processor

for tool in hyperfine python3 pgrep; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)"; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is missing (apt-get install time)"; exit 1; }
[ "${1:-}" = watch ] || [ "${1:-}" = cluster ] || [ "${1:-}" = memory ] || [ "${1:-}" = timeout ] || [ "${1:-}" = bombs ] || [ "${1:-}" = workbooks ] || [ "${1:-}" = documents ] || command -v xsv >/dev/null || cargo install --locked xsv
XSV=$(command -v xsv || echo "$HOME/.cargo/bin/xsv")

cargo build --release --quiet --bin file-processor --example floor --example sha256_floor
mkdir -p "$DATA" "$OUT"

# Watch mode: burst against the floor loop, latency, memory (bench/watch.py).
bench_watch() {
  python3 bench/watch.py "$BIN" target/release/examples/floor "$OUT"
}
# Uploads: 500 at once, and a 1 GiB one against a 1 MiB one (bench/upload.py); the 1 GiB
# upload is the log generated below.
bench_upload() {
  [ "$(stat -c %s $DATA/app.log 2>/dev/null || echo 0)" = "$LOG_BYTES" ] || python3 bench/gen.py log $DATA/app.log "$LOG_BYTES"
  python3 bench/upload.py "$BIN" "$OUT/upload" "$DATA/app.log"
}
if [ "${1:-}" = watch ]; then
  bench_watch
  exit 0
fi
if [ "${1:-}" = upload ]; then
  bench_upload
  exit 0
fi
# How late --job-timeout stops an analysis (bench/timeout.py).
bench_timeout() {
  python3 bench/timeout.py "$BIN" "$OUT" "$DATA" 1000
}
if [ "${1:-}" = timeout ]; then
  bench_timeout
  exit 0
fi
# Spreadsheets against openpyxl, PDF against pdftotext (bench/documents.py), with a venv
# for openpyxl and reportlab.
bench_documents() {
  [ -x "$OUT/py/bin/python" ] || python3 -m venv "$OUT/py"
  "$OUT/py/bin/python" -c "import openpyxl, reportlab" 2>/dev/null || "$OUT/py/bin/pip" install --quiet openpyxl reportlab
  command -v pdftotext >/dev/null || { echo "bench: pdftotext is missing (apt-get install poppler-utils)"; exit 1; }
  "$OUT/py/bin/python" bench/documents.py "$BIN" "$OUT" "$DATA"
}
if [ "${1:-}" = documents ]; then
  bench_documents
  exit 0
fi
# Cluster mode: bursts with --redis against without, three nodes against one, and /api/status
# of a cluster node (bench/cluster.py; needs redis-server, redis-cli, wrk and curl).
if [ "${1:-}" = cluster ]; then
  python3 bench/cluster.py "$BIN" "$OUT"
  exit 0
fi
# Hostile archives: outcome, time and peak memory of each (bench/bombs.py).
if [ "${1:-}" = bombs ]; then
  python3 bench/bombs.py "$BIN" "$OUT"
  exit 0
fi
# Hostile workbooks: outcome, time and peak memory of each (bench/workbooks.py).
if [ "${1:-}" = workbooks ]; then
  python3 bench/workbooks.py "$BIN" "$OUT"
  exit 0
fi
# Hostile data: peak memory and report size (bench/memory.py).
if [ "${1:-}" = memory ]; then
  python3 bench/memory.py "$BIN" "$OUT" "$DATA"
  exit 0
fi
[ "$(stat -c %s $DATA/app.log 2>/dev/null || echo 0)" = "$LOG_BYTES" ] || python3 bench/gen.py log $DATA/app.log "$LOG_BYTES"
[ -s $DATA/orders.csv ] || python3 bench/gen.py csv $DATA/orders.csv "$CSV_BYTES"

# `--input` moves its file: each timed run is prepared by moving it back (a rename: the page
# cache stays warm).
# shellcheck source=bench/restore.sh
source bench/restore.sh

mean_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['mean'])" "$1"; }
peak_kib() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'; }

bench_pair() { # label file reference-command [file-processor flags]
  local label=$1 file=$2 reference=$3 flags=${4:-}
  cat "$DATA/$file" >/dev/null
  hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$OUT/$label-reference.json" \
    --command-name "reference" "$reference" >/dev/null
  hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$OUT/$label-ours.json" \
    --prepare "bash -c 'source bench/restore.sh; restore $file'" \
    --command-name "file-processor" "$BIN --input $DATA/$file --dir $WD --json $flags" >/dev/null
  restore "$file"
  local peak
  # shellcheck disable=SC2086 # the flags are words
  peak=$(peak_kib "$BIN" --input "$DATA/$file" --dir "$WD" --json $flags)
  restore "$file"
  local ref ours
  ref=$(mean_of "$OUT/$label-reference.json")
  ours=$(mean_of "$OUT/$label-ours.json")
  python3 - "$label" "$ref" "$ours" "$peak" "$reference" <<'PY'
import sys
label, ref, ours, peak, reference = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print(f"{label:7} reference {ref:6.3f} s ({reference})")
print(f"{'':7} ours      {ours:6.3f} s  -> {ref / ours:4.1f}x faster, peak RSS {peak / 1024:.1f} MiB")
PY
}

# `bench/run.sh text|csv|gz|zip`: that pair alone.
ONLY=${1:-}
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
if want text; then
  echo "== text: $(du -h $DATA/app.log | cut -f1) log, $(nproc) cores"
  bench_pair text app.log "env LC_ALL=C.UTF-8 wc -lwm $DATA/app.log"
  # The floor of any report with SHA-256: reading and hashing the file alone, on one core.
  hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$OUT/text-sha256-floor.json" \
    --command-name "sha256 floor" "target/release/examples/sha256_floor $DATA/app.log" >/dev/null
  python3 - "$(mean_of "$OUT/text-reference.json")" "$(mean_of "$OUT/text-sha256-floor.json")" "$(mean_of "$OUT/text-ours.json")" <<'PY'
import sys
wc, floor, ours = map(float, sys.argv[1:4])
print(f"{'':7} hashing alone (read + sha2, examples/sha256_floor) {floor:6.3f} s: at most {wc / floor:4.1f}x wc for any SHA-256 report; ours is {ours / floor:4.2f}x it")
PY
  echo "== text with --hash blake3 (BLAKE3 on the rayon pool instead of one SHA-256 stream)"
  bench_pair text-b3 app.log "env LC_ALL=C.UTF-8 wc -lwm $DATA/app.log" "--hash blake3"
fi
if want csv; then
  echo "== csv: $(du -h $DATA/orders.csv | cut -f1) with a user column"
  bench_pair csv orders.csv "bash -c '$XSV stats $DATA/orders.csv >/dev/null && $XSV frequency -s user_id $DATA/orders.csv >/dev/null'"
fi
if want gz; then
  # The same log, gzip -6: decompressing is the floor, so the reference is zcat alone.
  [ -s $DATA/app.log.gz ] || gzip -6 -c $DATA/app.log > $DATA/app.log.gz
  echo "== gzip: the log as app.log.gz ($(du -h $DATA/app.log.gz | cut -f1)), against zcat alone"
  bench_pair gz app.log.gz "bash -c 'zcat $DATA/app.log.gz >/dev/null'"
fi
if want zip; then
  # 200 CSV members, 256 MiB unpacked: members are analysed in parallel; unzip -p only inflates.
  [ -s $DATA/orders.zip ] || python3 bench/gen.py zip $DATA/orders.zip "$CSV_BYTES"
  echo "== zip: 200 CSV members, $(du -h $DATA/orders.zip | cut -f1) packed, against unzip -p alone"
  bench_pair zip orders.zip "bash -c 'unzip -p $DATA/orders.zip >/dev/null'"
fi
[ -z "$ONLY" ] || exit 0
echo "== sha256 floor: the report hashes the whole file; one SHA-256 stream cannot run in parallel"
hyperfine --style basic --runs "$RUNS" --export-json "$OUT/sha.json" "openssl dgst -sha256 $DATA/app.log" >/dev/null 2>&1 \
  && echo "      openssl dgst -sha256 of the log: $(mean_of $OUT/sha.json | xargs printf '%.3f') s" \
  || echo "      (openssl not installed)"
bench_watch
bench_upload
bench_timeout
bench_documents
python3 bench/bombs.py "$BIN" "$OUT"
python3 bench/memory.py "$BIN" "$OUT" "$DATA"
command -v redis-server >/dev/null && python3 bench/cluster.py "$BIN" "$OUT" || echo "(cluster figures need redis-server: apt-get install redis-server)"
