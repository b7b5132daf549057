# One image for the gateway, the worker and the emulator; the command chooses:
#   docker run IMAGE serve | worker | emulator --host 0.0.0.0
# No secret is baked in: every setting comes from the environment at run time (deploy/).
# Nothing here was built on the machine that wrote it (no container engine); CI lints this
# file with hadolint and tests/deploy/test_dockerfile.py checks its invariants.

# Build stage: uv installs the locked dependencies, then the project, into /app/.venv.
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# Dependencies first: this layer is reused until the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY service ./service
COPY workers ./workers
COPY emulator ./emulator
COPY genlook_wire ./genlook_wire
# --no-editable: the venv holds the code itself, so the runtime stage copies only the venv.
RUN uv sync --frozen --no-dev --no-editable

# Runtime stage: no uv, no sources, no build tools; a non-root user; tini as PID 1 so SIGTERM
# reaches the worker (arq waits WORKER_JOB_COMPLETION_WAIT for running jobs) and zombies are reaped.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini=0.19.* \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /app tryon \
 && mkdir -p /var/lib/tryon/results && chown 10001:10001 /var/lib/tryon/results
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY deploy/probes/worker_alive.py /app/probes/worker_alive.py
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080 \
    RESULTS_STORE_URL=file:///var/lib/tryon/results
USER 10001:10001
EXPOSE 8080
# For the gateway (the default command); compose and Kubernetes set their own probes per role.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8080')}/healthz\", timeout=2)"]
ENTRYPOINT ["tini", "--", "tryon-gateway"]
CMD ["serve"]
