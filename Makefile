# file-processor: everyday commands. `make test` is what CI runs (see README).
BIN := target/release/file-processor

.PHONY: build input test lint bench clean

build:
	cargo build --release

## Analyse one file: make input file=PATH
input: build
	@test -n "$(file)" || { echo "usage: make input file=PATH" >&2; exit 2; }
	$(BIN) --input "$(file)"

## Formatting, lints and every test (unit, property, integration against the real binary).
test: lint
	cargo test --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

## Speed and memory figures (release build, generated data): see README "Benchmarks".
bench:
	bash bench/run.sh

## Removes build output and benchmark data; never touches watch_dir.
clean:
	cargo clean
	rm -rf bench/data bench/out
