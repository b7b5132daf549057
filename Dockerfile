# One image for the gateway, the worker and the emulator; the command chooses:
#   docker run IMAGE serve | worker | emulator --host 0.0.0.0
# Build stage: uv installs the locked dependencies into /app/.venv.
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY service ./service
COPY workers ./workers
COPY emulator ./emulator
RUN uv sync --frozen --no-dev

# Runtime stage: no build tools, no uv, a non-root user, no secrets (configuration comes from
# the environment at run time).
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /app tryon
WORKDIR /app
COPY --from=build --chown=tryon:tryon /app /app
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 GATEWAY_HOST=0.0.0.0
USER tryon
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["tryon-gateway"]
CMD ["serve"]
