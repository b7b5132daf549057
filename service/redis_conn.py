"""One `REDIS_URL` for every Redis client: a plain Redis URL, or a Sentinel URL.

    redis+sentinel://[[user]:password@]host1[:26379][,host2[:26379]...]/<master name>[/<db>]

e.g. `redis+sentinel://:s3cret@sentinel-0:26379,sentinel-1:26379/mymaster/0`. The credentials
are the data nodes' (the master's), not the sentinels': the sentinels are asked without AUTH,
because arq gives its Sentinel client no way to authenticate to them. Every other URL
(`redis://`, `rediss://`, `unix://`) goes to redis-py unchanged.

Three kinds of client read it: redis-py clients (`connect`: a Sentinel-managed pool that asks
for the master on each new connection), the gateway's auto-pipeline (`master_url` on each of
its (re)connects, then `direct_target`) and arq (`arq_redis_settings`). The auto-pipeline
speaks to its socket itself, so `direct_target` reads a plain URL the way redis-py does: every
TLS option of a `rediss://` URL (`ssl_cert_reqs`, `ssl_ca_certs`, `ssl_ca_data`,
`ssl_certfile`, `ssl_keyfile`, `ssl_check_hostname`, `ssl_ciphers`) builds redis-py's own TLS
context, with redis-py's defaults (certificate required, host name not checked); an option the
pipeline cannot honour is refused when the gateway starts, named.

After a failover, Sentinel makes the old master drop its clients (CLIENT KILL while
reconfiguring it), so each of them reconnects and finds the new master.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from arq.connections import RedisSettings as ArqRedisSettings
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

SENTINEL_SCHEME = "redis+sentinel"
# What a Redis outage raises (restart, failover, network), whichever client asked.
STORE_ERRORS = (RedisConnectionError, RedisTimeoutError)
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    def master_url(self, host: str, port: int) -> str:
        """A plain URL to the master Sentinel named, with this URL's credentials and db."""
        auth = ""
        if self.password is not None:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        elif self.username:
            auth = f"{quote(self.username, safe='')}@"
        shown = f"[{host}]" if ":" in host else host
        return f"redis://{auth}{shown}:{port}/{self.db}"


# Query options that tune redis-py's pools and mean nothing on one pipelined connection.
_POOL_ONLY = frozenset(
    {"max_connections", "health_check_interval", "retry_on_timeout", "socket_keepalive"}
)
_LOCATION = frozenset({"host", "port", "path", "db", "username", "password", "connection_class"})


@dataclass(frozen=True)
class DirectTarget:
    """Where and how the auto-pipeline connects for a plain (non-Sentinel) URL."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None


def direct_target(url: str) -> DirectTarget:
    """A `redis://`, `rediss://` or `unix://` URL read as redis-py reads it. ValueError names
    an option the auto-pipeline cannot honour, or TLS settings that do not load."""
    u: dict[str, Any] = dict(parse_url(url))
    tls_options = {k: u.pop(k) for k in list(u) if k.startswith("ssl_")}
    unsupported = sorted(set(u) - _LOCATION - _POOL_ONLY)
    if unsupported:
        raise ValueError(
            f"REDIS_URL option(s) {', '.join(unsupported)} cannot be honoured by the gateway's "
            "auto-pipeline; timeouts are REDIS_CONNECT_TIMEOUT / REDIS_SOCKET_TIMEOUT: "
            f"{_redact(url)}"
        )
    tls = None
    if u.get("connection_class") is SSLConnection:
        try:
            # redis-py's own connection builds the context, so its options and defaults apply.
            tls = SSLConnection(**tls_options).ssl_context.get()
        except (TypeError, ValueError, OSError, RedisError, ssl.SSLError) as exc:
            raise ValueError(f"REDIS_URL TLS options: {exc}: {_redact(url)}") from exc
    elif tls_options:
        raise ValueError(f"REDIS_URL ssl_* options need a rediss:// URL: {_redact(url)}")
    return DirectTarget(
        host=u.get("host", "127.0.0.1"),
        port=int(u.get("port", 6379)),
        path=u.get("path"),
        db=int(u.get("db", 0)),
        username=u.get("username"),
        password=u.get("password"),
        tls=tls,
    )


def parse_sentinel_url(url: str) -> SentinelUrl | None:
    """The Sentinel URL's parts; None for any other URL. Raises ValueError when malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SENTINEL_SCHEME:
        return None
    rest = rest.partition("?")[0]
    location, _, path = rest.partition("/")
    userinfo, at, hosts = location.rpartition("@")
    if not at:
        hosts, userinfo = location, ""
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"{SENTINEL_SCHEME} URL needs /<master name>[/<db>]: {_redact(url)}")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(f"{SENTINEL_SCHEME} URL: the database must be a number: {_redact(url)}")
    username, colon, password = userinfo.partition(":")
    return SentinelUrl(
        sentinels=tuple(_host_port(h, url) for h in hosts.split(",")),
        master=unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) if colon else None,
    )


def connect(
    url: str, *, connect_timeout: float, socket_timeout: float, health_check_interval: int
) -> Redis:
    options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
        "health_check_interval": health_check_interval,
    }
    target = parse_sentinel_url(url)
    if target is None:
        client: Redis = Redis.from_url(url, **options)
        return client
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels, sentinel_kwargs=_sentinel_options(connect_timeout)
    )
    master: Redis = sentinel.master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=target.password,
        **options,
    )
    return master


async def master_url(url: str, *, sentinel_timeout: float) -> str:
    """`url` itself, or for a Sentinel URL a plain URL to the master the sentinels name now."""
    target = parse_sentinel_url(url)
    if target is None:
        return url
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels, sentinel_kwargs=_sentinel_options(sentinel_timeout)
    )
    try:
        host, port = await sentinel.discover_master(target.master)
    finally:
        for client in sentinel.sentinels:
            await client.aclose()
    return target.master_url(str(host), int(port))


def arq_redis_settings(url: str) -> ArqRedisSettings:
    target = parse_sentinel_url(url)
    if target is None:
        return ArqRedisSettings.from_dsn(url)
    return ArqRedisSettings(
        host=list(target.sentinels),
        sentinel=True,
        sentinel_master=target.master,
        database=target.db,
        username=target.username,
        password=target.password,
    )


def _sentinel_options(timeout: float) -> dict[str, Any]:
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout}


def _host_port(text: str, url: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, _, tail = text[1:].partition("]")
        port = tail.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host or (port and not port.isdigit()):
        raise ValueError(f"{SENTINEL_SCHEME} URL: bad sentinel address {text!r}: {_redact(url)}")
    return host, int(port) if port else SENTINEL_PORT


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    location, slash, path = rest.partition("/")
    userinfo, at, hosts = location.rpartition("@")
    if not at:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{hosts}{slash}{path}"
