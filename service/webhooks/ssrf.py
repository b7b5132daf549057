"""SSRF guard for callback URLs: checked when a client registers one and again on every send.

A callback URL is chosen by a client, and the gateway runs next to Redis, the workers, the
cloud metadata endpoint and whatever else shares its network. Three layers keep a delivery from
becoming a request to any of those:

1. `validate_url` checks the URL itself: https only (http only for hosts the operator lists in
   `UrlPolicy.allow_http_hosts`), a host, no credentials, no fragment, a sane length and port.
   It parses with `httpx.URL`, the parser the client will use, so what is checked is exactly
   what is sent (no parser differential).
2. `check_address` refuses every non-public address: the table is `_V4_BLOCKED`/`_V6_BLOCKED`
   plus IPv4 embedded in IPv6 (mapped, NAT64, 6to4, Teredo) and a fallback on Python's own
   `is_global`. `resolve_and_check` requires *every* resolved address to pass: a name with one
   public and one private record is refused, since the connection could go to either.
3. `GuardedTransport` resolves and checks inside httpcore's `connect_tcp` and connects to the
   address it has just checked, so there is no second DNS lookup for a rebinding server to
   answer differently. httpcore (1.0.x) calls `connect_tcp(host=<URL host>, ...)` and then
   `start_tls(server_hostname=<URL host>)` separately (`_async/connection.py`, `_connect`), so
   TLS still sends SNI for, and verifies the certificate against, the hostname; httpx keeps
   the Host header from the URL. Redirects are never followed (`follow_redirects=False`), and
   if a caller overrides that per request, every hop still goes through this transport.

Errors: `ForbiddenTarget(code, reason)` with a stable `code` (`CALLBACK_URL_INVALID` for a
malformed URL, `CALLBACK_URL_FORBIDDEN` for a well-formed one we will not contact) and a reason
such as "hooks.example.com resolves to 10.0.0.5 (private)". `UnresolvableTarget` (a subclass,
`CALLBACK_URL_UNRESOLVABLE`) is a DNS failure: at registration it is a rejection like the
others; at send time the transport raises it as `httpx.ConnectError`, because a DNS hiccup is
transient and the delivery layer retries connect errors. `ForbiddenTarget` raised at send time
is *not* an `httpx` exception: it propagates from `client.send()` unchanged so the delivery
layer cannot mistake a refusal for a flaky receiver.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeAlias

import httpcore
import httpx

from service.domain_errors import InvalidInput

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
# An injectable resolver: (host, port) -> addresses. Tests make a name resolve to 10.0.0.5
# without touching /etc/hosts; production uses `SystemResolver`. It may raise
# `UnresolvableTarget` (or `OSError`, which is treated the same).
Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

INVALID: Final = "CALLBACK_URL_INVALID"
FORBIDDEN: Final = "CALLBACK_URL_FORBIDDEN"
UNRESOLVABLE: Final = "CALLBACK_URL_UNRESOLVABLE"

DEFAULT_MAX_URL_LENGTH: Final = 2048
DEFAULT_DNS_TIMEOUT: Final = 5.0
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024


class ForbiddenTarget(InvalidInput):
    """A callback URL, or an address it resolves to, that the gateway will not contact.

    Invalid input of the request that named the URL: at registration it reaches the client as
    it is (400 with its code)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code, f"{code}: {reason}")
        self.reason = reason


class UnresolvableTarget(ForbiddenTarget):
    """The callback host did not resolve (NXDOMAIN, no A/AAAA, timeout).

    A subclass so that registration handles every refusal with one `except`; the transport
    turns it into `httpx.ConnectError` at send time (transient, retried like any connect error).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(UNRESOLVABLE, reason)


class ResponseTooLarge(httpx.ReadError):
    """The receiver sent more body than `max_response_bytes`; reading stopped there.

    Raised only when a reader asks for more than the cap (the bytes up to it come first).
    An `httpx.ReadError` so that code treating transport errors generically still copes; the
    delivery layer judges the status code, which is known before the body is read.
    """


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """What a callback URL may be. Production: the defaults (https, public addresses only).

    `allow_http_hosts` lists hosts (as the URL spells them, e.g. "127.0.0.1", "localhost",
    "::1") for which http:// is accepted *and* loopback/private addresses are reachable: dev
    and tests deliver to a receiver on loopback. Even for those hosts, metadata, link-local,
    multicast and reserved addresses stay blocked.
    """

    allow_http_hosts: frozenset[str] = frozenset()
    max_url_length: int = DEFAULT_MAX_URL_LENGTH
    # None: any port 1-65535. Receivers run on arbitrary ports; the address check, not the
    # port, is what keeps deliveries off internal services.
    allowed_ports: frozenset[int] | None = None

    def __post_init__(self) -> None:
        # Compare against httpx's normalised host: lower case, IPv6 without brackets.
        hosts = frozenset(h.strip().lower().strip("[]") for h in self.allow_http_hosts)
        object.__setattr__(self, "allow_http_hosts", hosts)

    def allows_internal(self, host: str) -> bool:
        return host.lower() in self.allow_http_hosts


@dataclass(frozen=True, slots=True)
class ParsedTarget:
    """A syntactically acceptable callback URL, as httpx will send it."""

    url: httpx.URL
    scheme: str
    # As httpcore will pass it to connect_tcp: lower case, IDNA-encoded, IPv6 unbracketed.
    host: str
    port: int
    # Set when the host is an address literal: no resolution happens for it.
    ip: IPAddress | None


class Blocked(NamedTuple):
    """Why an address is refused. `internal` ones may be reached by allow-listed hosts."""

    label: str
    internal: bool = False


_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_METADATA: Final = Blocked("cloud metadata")
_PRIVATE: Final = Blocked("private", internal=True)
_LOOPBACK: Final = Blocked("loopback", internal=True)
_DOCUMENTATION: Final = Blocked("documentation")

# First match wins, so specific entries come before the ranges that contain them.
_V4_BLOCKED: Final[tuple[tuple[ipaddress.IPv4Network, Blocked], ...]] = (
    (_V4("0.0.0.0/32"), Blocked("unspecified")),
    (_V4("0.0.0.0/8"), Blocked("this-network 0.0.0.0/8")),
    (_V4("10.0.0.0/8"), _PRIVATE),
    (_V4("100.100.100.200/32"), _METADATA),  # Alibaba Cloud
    (_V4("100.64.0.0/10"), Blocked("carrier-grade NAT")),
    (_V4("127.0.0.0/8"), _LOOPBACK),
    (_V4("169.254.169.254/32"), _METADATA),  # AWS, GCP, Azure, OpenStack, ...
    (_V4("169.254.170.2/32"), _METADATA),  # AWS ECS task metadata
    (_V4("169.254.0.0/16"), Blocked("link-local")),
    (_V4("172.16.0.0/12"), _PRIVATE),
    (_V4("192.0.0.0/24"), Blocked("IETF protocol assignments")),
    (_V4("192.0.2.0/24"), _DOCUMENTATION),
    (_V4("192.88.99.0/24"), Blocked("6to4 relay anycast")),
    (_V4("192.168.0.0/16"), _PRIVATE),
    (_V4("198.18.0.0/15"), Blocked("benchmarking")),
    (_V4("198.51.100.0/24"), _DOCUMENTATION),
    (_V4("203.0.113.0/24"), _DOCUMENTATION),
    (_V4("224.0.0.0/4"), Blocked("multicast")),
    (_V4("255.255.255.255/32"), Blocked("broadcast")),
    (_V4("240.0.0.0/4"), Blocked("reserved")),
)

_V6_BLOCKED: Final[tuple[tuple[ipaddress.IPv6Network, Blocked], ...]] = (
    (_V6("::/128"), Blocked("unspecified")),
    (_V6("::1/128"), _LOOPBACK),
    (_V6("fd00:ec2::254/128"), _METADATA),  # AWS IMDS over IPv6
    (_V6("fc00::/7"), Blocked("unique-local", internal=True)),
    (_V6("fe80::/10"), Blocked("link-local")),
    (_V6("fec0::/10"), Blocked("site-local")),
    (_V6("ff00::/8"), Blocked("multicast")),
    (_V6("100::/64"), Blocked("discard-only")),
    (_V6("64:ff9b:1::/48"), Blocked("local-use NAT64")),
    (_V6("2001:db8::/32"), _DOCUMENTATION),
    (_V6("3fff::/20"), _DOCUMENTATION),
    # Teredo (2001::/32) is handled before this table; the rest of 2001::/23 is protocol
    # anycast and experiments (ORCHID, AS112, ...): nothing a webhook receiver lives on.
    (_V6("2001::/23"), Blocked("IETF protocol assignments")),
)

_NAT64: Final = _V6("64:ff9b::/96")
_GLOBAL_UNICAST: Final = _V6("2000::/3")


def classify_address(ip: IPAddress) -> Blocked | None:
    """None for a public address, otherwise why it is blocked."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _classify_v4(ip)
    return _classify_v6(ip)


def _classify_v4(ip: ipaddress.IPv4Address) -> Blocked | None:
    for network, blocked in _V4_BLOCKED:
        if ip in network:
            return blocked
    # Defence in depth: anything Python knows to be non-global that the table missed.
    if not ip.is_global:
        return Blocked("not globally routable")
    return None


def _embedded(kind: str, v4: ipaddress.IPv4Address) -> Blocked | None:
    inner = _classify_v4(v4)
    if inner is None:
        return None
    # Keep `internal`: ::ffff:127.0.0.1 is loopback for an allow-listed host too.
    return Blocked(f"{kind} {v4}: {inner.label}", inner.internal)


def _classify_v6(ip: ipaddress.IPv6Address) -> Blocked | None:
    # IPv4 embedded in IPv6: the packet ends up at the IPv4 address, so that is what counts.
    # A public embedded address is allowed (that is how IPv6-only and dual-stack hosts reach
    # IPv4), a blocked one is blocked with both addresses in the reason.
    if ip.ipv4_mapped is not None:
        return _embedded("IPv4-mapped", ip.ipv4_mapped)
    if ip in _NAT64:
        return _embedded("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
    if ip.sixtofour is not None:
        return _embedded("6to4", ip.sixtofour)
    if ip.teredo is not None:
        server, client = ip.teredo
        # Always blocked, allow-list or not (a tunnel endpoint is no receiver); the reason
        # names an embedded internal address when there is one.
        inner = _embedded("Teredo", client) or _embedded("Teredo", server)
        return Blocked(inner.label if inner else "Teredo")
    for network, blocked in _V6_BLOCKED:
        if ip in network:
            return blocked
    if ip not in _GLOBAL_UNICAST:
        # Everything outside 2000::/3 is reserved or special (IPv4-compatible ::a.b.c.d,
        # IPv4-translated, ...); Python 3.11's is_global misses some of it.
        return Blocked("reserved")
    if not ip.is_global:
        return Blocked("not globally routable")
    return None


def check_address(ip: IPAddress, policy: UrlPolicy, host: str) -> None:
    """Raise `ForbiddenTarget` unless `host` may be contacted at `ip`."""
    blocked = classify_address(ip)
    if blocked is None:
        return
    if blocked.internal and policy.allows_internal(host):
        return
    if _same_address(host, ip):
        reason = f"{ip} is not a public address ({blocked.label})"
    else:
        reason = f"{host} resolves to {ip} ({blocked.label})"
    raise ForbiddenTarget(FORBIDDEN, reason)


def _same_address(host: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host) == ip
    except ValueError:
        return False


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    # "127.1", "2130706433", "0x7f.1": the OS resolver reads these as IPv4 but ipaddress does
    # not. They would still be caught after resolution; refusing them outright is clearer.
    raise ForbiddenTarget(INVALID, f"host {host!r} is a non-canonical IPv4 address")


def validate_url(url: str | httpx.URL, policy: UrlPolicy) -> ParsedTarget:
    """Check a callback URL's syntax, scheme and port; check its address if it is a literal.

    Raises `ForbiddenTarget`. Needs no network: a hostname's addresses are checked by
    `resolve_and_check` (registration) and by the transport (every send).
    """
    text = str(url)
    if len(text) > policy.max_url_length:
        raise ForbiddenTarget(INVALID, f"URL is longer than {policy.max_url_length} characters")
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ForbiddenTarget(INVALID, f"URL does not parse: {exc}") from exc
    scheme = parsed.scheme
    if scheme not in ("https", "http"):
        raise ForbiddenTarget(INVALID, f"scheme {scheme or '(none)'!r} is not supported: use https")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise ForbiddenTarget(INVALID, "URL has no host")
    if parsed.userinfo:
        # Credentials in a URL end up in logs and in the attempts API; receivers
        # authenticate deliveries by their signature instead.
        raise ForbiddenTarget(INVALID, "URL must not contain credentials (user:password@)")
    if parsed.fragment:
        raise ForbiddenTarget(INVALID, "URL must not contain a fragment (#...)")
    port = parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise ForbiddenTarget(INVALID, f"port {port} is out of range")
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        raise ForbiddenTarget(FORBIDDEN, f"port {port} is not allowed")
    if scheme == "http" and not policy.allows_internal(host):
        raise ForbiddenTarget(FORBIDDEN, f"http:// is not allowed for {host}: use https://")
    ip = _literal_ip(host)
    if ip is not None:
        check_address(ip, policy, host)
    return ParsedTarget(url=parsed, scheme=scheme, host=host, port=port, ip=ip)


class SystemResolver:
    """The OS resolver (`loop.getaddrinfo`), bounded by a timeout.

    The timeout stops the wait, not the lookup: getaddrinfo runs in the default executor and
    cannot be cancelled, so a thread may finish a slow lookup in the background.
    """

    def __init__(self, timeout: float = DEFAULT_DNS_TIMEOUT) -> None:
        self.timeout = timeout

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
        except TimeoutError as exc:
            raise UnresolvableTarget(f"DNS lookup of {host} timed out") from exc
        except OSError as exc:
            raise UnresolvableTarget(f"{host} does not resolve: {exc}") from exc
        addresses: list[IPAddress] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(str(sockaddr[0]))
            if ip not in addresses:
                addresses.append(ip)
        return addresses


async def _resolve_checked(
    host: str, port: int, policy: UrlPolicy, resolver: Resolver
) -> list[IPAddress]:
    ip = _literal_ip(host)
    if ip is not None:
        check_address(ip, policy, host)
        return [ip]
    try:
        addresses = list(await resolver(host, port))
    except OSError as exc:
        raise UnresolvableTarget(f"{host} does not resolve: {exc}") from exc
    if not addresses:
        raise UnresolvableTarget(f"{host} has no A or AAAA record")
    # Every record must pass: the connection may go to any of them, and a rebinding server
    # would put its private answer next to a public one.
    for address in addresses:
        check_address(address, policy, host)
    return addresses


async def resolve_and_check(
    target: ParsedTarget, policy: UrlPolicy, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Resolve the target's host and check every address; the addresses, in resolver order.

    Raises `ForbiddenTarget` (`UnresolvableTarget` when nothing resolves).
    """
    return await _resolve_checked(target.host, target.port, policy, resolver or SystemResolver())


async def check_callback_url(
    url: str, policy: UrlPolicy, resolver: Resolver | None = None
) -> ParsedTarget:
    """Registration: the URL's syntax and, now, every address it resolves to."""
    target = validate_url(url, policy)
    await resolve_and_check(target, policy, resolver)
    return target


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend whose `connect_tcp` resolves, checks, then connects to that address.

    Resolution and check happen here, inside the connect, so the address connected to is the
    address checked: nothing else resolves the name between the check and the connect.
    """

    def __init__(
        self,
        policy: UrlPolicy,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver or SystemResolver()
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # httpx's connect timeout bounds resolution and every connect attempt together.
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                addresses = await _resolve_checked(host, port, self._policy, self._resolver)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from exc
        except UnresolvableTarget as exc:
            raise httpcore.ConnectError(exc.reason) from exc
        error: Exception | None = None
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # _resolve_checked never returns an empty list
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # The transport never configures a Unix socket; refuse rather than bypass the check.
        raise ForbiddenTarget(FORBIDDEN, "Unix sockets are not callback targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _LimitedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int, request: httpx.Request) -> None:
        self._inner = inner
        self._limit = limit
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            room = self._limit - seen
            if len(chunk) > room:
                # Everything up to the cap first: a reader that wants only the start of a
                # large body (the deliverer's excerpt) gets it, with the status, and stops
                # before the error; one that reads on gets the error, never more bytes.
                if room > 0:
                    seen += room
                    yield chunk[:room]
                raise ResponseTooLarge(
                    f"response body exceeds {self._limit} bytes", request=self._request
                )
            seen += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncHTTPTransport` whose connections go through `PinnedNetworkBackend`.

    Each request's URL is re-validated (scheme, credentials, port) so a redirect that a caller
    chose to follow is held to the same rules as the registered URL.
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._policy = policy
        self._max_response_bytes = max_response_bytes
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._http = httpx.AsyncHTTPTransport(verify=verify, trust_env=False, limits=limits)
        # httpx 0.28's transport takes no network backend, so its pool is replaced by one built
        # with the same settings plus ours (the pin httpx<0.29 in pyproject covers this
        # private attribute; tests/integration/test_ssrf_http.py fails if it stops working).
        self._http._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=PinnedNetworkBackend(policy, resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        validate_url(request.url, self._policy)
        response = await self._http.handle_async_request(request)
        if self._max_response_bytes is None:
            return response
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_LimitedStream(response.stream, self._max_response_bytes, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def guarded_client(
    policy: UrlPolicy,
    *,
    timeout: httpx.Timeout | float,
    max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits | None = None,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for deliveries: guarded transport, no redirects, no env proxies.

    `trust_env=False`: an HTTP(S)_PROXY in the environment would otherwise mount a proxy
    transport in front of ours and the pinned connection would be to the proxy. Responses are
    requested uncompressed because `max_response_bytes` counts bytes on the wire.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(
            policy,
            resolver=resolver,
            verify=verify,
            limits=limits,
            max_response_bytes=max_response_bytes,
        ),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"accept-encoding": "identity"},
    )
