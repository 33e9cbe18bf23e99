# syntax=docker/dockerfile:1
#
# ZealSync: one image, one binary. The subcommand picks the role:
#   docker run zealsync:local publisher   (port 8000)
#   docker run zealsync:local subscriber  (port 8001)
#   docker run zealsync:local all         (both, the default)
#   docker run zealsync:local migrate     (run the migrations, then exit)
# `docker compose up --build` runs the whole system (see docker-compose.yml).

# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
# The rust slim images already ship gcc and libc6-dev, which is all ring (rustls) and the
# bundled SQLite need; no OpenSSL or pkg-config is involved.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# 1. Dependencies only: with a dummy lib and main, this layer is rebuilt only when
#    Cargo.toml or Cargo.lock change.
#    Cargo.toml declares a bench target, so its file must exist too.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/codec.rs \
    && cargo build --release --locked --bin zealsync \
    && rm -rf src benches

# 2. The real crate. config/ must be present: src/config/settings.rs compiles in
#    config/default.toml with include_str!.
COPY config ./config
COPY benches ./benches
COPY src ./src
# COPY keeps the files' original mtimes, which can be older than the dummy build's
# artefacts; touch the crate roots so cargo rebuilds the crate itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin zealsync \
    && strip target/release/zealsync

# ---------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: amqps/rediss/TLS Postgres through rustls-native-certs.
# curl: the health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 zealsync \
    && useradd --system --uid 10001 --gid zealsync --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin zealsync

WORKDIR /app
COPY --from=builder /build/target/release/zealsync /usr/local/bin/zealsync
COPY --chown=zealsync:zealsync config ./config
# logs/: the rolling log files (log.dir = "logs"); data/: SQLite files when no
# PostgreSQL URL is supplied.
RUN mkdir -p /app/logs /app/data && chown -R zealsync:zealsync /app/logs /app/data

USER zealsync:zealsync

ENV ZEALSYNC_ENV=production \
    ZEALSYNC_CONFIG_DIR=/app/config

EXPOSE 8000 8001

# Works for every serving role: `publisher` and `all` answer on 8000, `subscriber` on 8001.
# docker-compose.yml overrides it per service.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health/live || curl -fsS http://127.0.0.1:8001/health/live || exit 1

ENTRYPOINT ["zealsync"]
CMD ["all"]
