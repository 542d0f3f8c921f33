# chat-mio-server in a container (see README, Deploying):
#
#   docker build -t chat-mio-server --build-arg GIT_COMMIT=$(git rev-parse --short HEAD) .
#   docker run -d --name chat -p 8000:8000 -v chat-data:/data chat-mio-server
#
# Options are CHAT_* environment variables (docker run -e CHAT_AUTH=token ...), flags after
# the image name, or a TOML file mounted and named with CHAT_CONFIG. The messages live in the
# /data volume. `docker stop` sends SIGTERM: clients get close 1001, then the store is closed.

# --- build: the release binary, from the workspace's locked dependencies ---
FROM rust:1-slim-trixie AS build
WORKDIR /src
COPY . .
# No .git in the context: the commit --version shows comes from the build argument.
ARG GIT_COMMIT=unknown
ENV CHAT_GIT_COMMIT=${GIT_COMMIT}
RUN cargo build --release --locked -p chat-mio-server \
 && install -m 0755 target/release/chat-mio-server /usr/local/bin/chat-mio-server

# --- run: a minimal Debian (the same release as the build stage: same glibc), the binary and
# an unprivileged user ---
FROM debian:trixie-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin chat \
 && mkdir /data \
 && chown chat:chat /data \
 && chmod 0700 /data
COPY --from=build /usr/local/bin/chat-mio-server /usr/local/bin/chat-mio-server
ENV CHAT_BIND=0.0.0.0:8000 \
    CHAT_DATA_DIR=/data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
STOPSIGNAL SIGTERM
# No curl in the image: bash's /dev/tcp asks /healthz and wants a 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/chat-mio-server"]
