# file-processor in a container: `make docker` (or `docker build -t file-processor .`), then
#   docker run -p 5000:5000 file-processor --watch
#   docker run -v "$(pwd)/watch_dir:/app/watch_dir" file-processor --input watch_dir/unprocessed/test.txt
# See README, "Docker".

# Build stage: the release binary, from the locked dependencies.
FROM rust:1-slim-trixie AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY static ./static
RUN cargo build --release --locked --bin file-processor

# Runtime stage: the binary alone on a slim Debian, run by a user who is not root. Its uid and
# gid are 1000, the usual owner of a bind-mounted watch_dir on a Linux host; with another
# owner, run with --user "$(id -u):$(id -g)".
FROM debian:trixie-slim
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app/watch_dir/unprocessed /app/watch_dir/underprocess /app/watch_dir/processed /app/watch_dir/failed \
    && chown -R app:app /app
COPY --from=build /src/target/release/file-processor /usr/local/bin/file-processor
WORKDIR /app
USER 1000:1000
VOLUME ["/app/watch_dir"]
# Inside the container the server listens on every address, so that -p 5000:5000 reaches it.
ENV FP_HOST=0.0.0.0 \
    FP_PORT=5000 \
    FP_DIR=watch_dir
EXPOSE 5000
# The binary asks its own /health: no curl or wget in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["file-processor", "--check-health"]
ENTRYPOINT ["file-processor"]
CMD ["--watch"]
