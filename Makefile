# The two commands of the README, plus the checks CI runs. Each target installs what it needs.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: dev test check uv redis chromium node

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --user uv \
		|| python3 -m pip install --quiet --break-system-packages uv

# Everything on this machine: Redis (if none answers), emulator, gateway, worker.
dev: uv
	uv sync --frozen
	uv run tryon-gateway dev

# Tests need a Redis at 127.0.0.1:6379 (they use database 9 and flush it).
redis:
	@if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then \
		command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null); \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; \
		for _ in $$(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.1; done; \
	fi

# The dashboard's browser test drives Debian's Chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# The JS client's TypeScript declarations are checked with tsc, which the test installs from
# npm (typescript@5 into .cache/ts) on first use; node and npm come from Debian.
node:
	@command -v npm >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)

test: uv redis chromium node
	uv sync --frozen
	uv run pytest

check: uv
	uv sync --frozen
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
