"""The SSRF guard on real sockets: a receiver on 127.0.0.1, names resolved by a fake resolver.

Everything connects to 127.0.0.1 only. Names end in `.test` (reserved, never resolvable by the
OS), so a request to one that succeeds proves the connection went to the address our resolver
gave and the guard checked, not to anything the OS looked up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from service.webhooks.ssrf import (
    FORBIDDEN,
    ForbiddenTarget,
    IPAddress,
    ResponseTooLarge,
    UrlPolicy,
    check_callback_url,
    guarded_client,
)

TIMEOUT = httpx.Timeout(2.0)


@dataclass
class Seen:
    peer: str
    method: str
    path: str
    host: str | None
    body: bytes


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: one request per connection, records what reached it."""

    redirect_to: str = "http://169.254.169.254/latest/meta-data/"
    connections: list[str] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer.get_extra_info("peername")[0])
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            self.requests.append(
                Seen(self.connections[-1], method, path, headers.get("host"), body)
            )
            if path == "/redirect":
                status, extra, payload = "302 Found", f"location: {self.redirect_to}\r\n", b""
            elif path == "/big":
                status, extra, payload = "200 OK", "", b"x" * 200_000
            else:
                status, extra, payload = "200 OK", "", b"ok"
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-length: {len(payload)}\r\n"
                f"connection: close\r\n{extra}\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


class FakeDns:
    """Answers from a table; a name may have a list of answers, one per lookup (rebinding)."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.calls.append(host)
        answers = self.table.get(host)
        if not answers:
            return []
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ipaddress.ip_address(a) for a in answer]


LOOPBACK_DEV = UrlPolicy(allow_http_hosts=frozenset({"127.0.0.1"}))


async def test_delivery_to_allow_listed_loopback_host(receiver: Receiver) -> None:
    async with guarded_client(LOOPBACK_DEV, timeout=TIMEOUT) as client:
        assert client.follow_redirects is False
        r = await client.post(f"http://127.0.0.1:{receiver.port}/hook", content=b'{"a":1}')
    assert (r.status_code, r.content) == (200, b"ok")
    assert [(s.peer, s.method, s.path, s.body) for s in receiver.requests] == [
        ("127.0.0.1", "POST", "/hook", b'{"a":1}')
    ]


async def test_connection_goes_to_the_checked_address_with_the_original_host(
    receiver: Receiver,
) -> None:
    # hooks.test answers 127.0.0.1 once, then 10.0.0.5: a second lookup anywhere in the request
    # would show up in dns.calls (and the OS cannot resolve .test at all).
    dns = FakeDns({"hooks.test": [["127.0.0.1"], ["10.0.0.5"]]})
    policy = UrlPolicy(allow_http_hosts=frozenset({"hooks.test"}))
    async with guarded_client(policy, timeout=TIMEOUT, resolver=dns) as client:
        r = await client.get(f"http://hooks.test:{receiver.port}/pinned")
    assert r.status_code == 200
    assert dns.calls == ["hooks.test"]
    assert receiver.connections == ["127.0.0.1"]
    assert receiver.requests[0].host == f"hooks.test:{receiver.port}"


async def test_name_resolving_to_loopback_is_refused_at_connect(receiver: Receiver) -> None:
    # https, so the URL itself passes validate_url; the refusal comes from the connect step.
    dns = FakeDns({"evil.test": [["127.0.0.1"]]})
    async with guarded_client(LOOPBACK_DEV, timeout=TIMEOUT, resolver=dns) as client:
        with pytest.raises(ForbiddenTarget) as caught:
            await client.get(f"https://evil.test:{receiver.port}/hook")
    assert caught.value.code == FORBIDDEN
    assert caught.value.reason == "evil.test resolves to 127.0.0.1 (loopback)"
    assert dns.calls == ["evil.test"]
    assert receiver.connections == []


async def test_mixed_records_refused_at_connect(receiver: Receiver) -> None:
    # Loopback first: even a broken guard would only ever touch 127.0.0.1 here (the unit
    # tests cover public-first ordering without sockets).
    dns = FakeDns({"mixed.test": [["127.0.0.1", "93.184.216.34"]]})
    async with guarded_client(UrlPolicy(), timeout=TIMEOUT, resolver=dns) as client:
        with pytest.raises(ForbiddenTarget, match=r"resolves to 127\.0\.0\.1 \(loopback\)"):
            await client.get(f"https://mixed.test:{receiver.port}/hook")
    assert receiver.connections == []


async def test_redirect_is_returned_never_followed(receiver: Receiver) -> None:
    async with guarded_client(LOOPBACK_DEV, timeout=TIMEOUT) as client:
        r = await client.post(f"http://127.0.0.1:{receiver.port}/redirect", content=b"{}")
    assert r.status_code == 302
    assert r.headers["location"] == "http://169.254.169.254/latest/meta-data/"
    assert r.is_redirect
    assert len(receiver.requests) == 1


async def test_redirect_followed_by_caller_override_is_still_guarded(receiver: Receiver) -> None:
    receiver.redirect_to = f"https://evil.test:{receiver.port}/hook"
    dns = FakeDns({"evil.test": [["127.0.0.1"]]})
    async with guarded_client(LOOPBACK_DEV, timeout=TIMEOUT, resolver=dns) as client:
        with pytest.raises(ForbiddenTarget, match=r"evil\.test resolves to 127\.0\.0\.1"):
            await client.get(f"http://127.0.0.1:{receiver.port}/redirect", follow_redirects=True)
    assert [s.path for s in receiver.requests] == ["/redirect"]


async def test_dns_rebinding_between_registration_and_send(receiver: Receiver) -> None:
    # Registration sees a public address; the send-time lookup answers loopback.
    dns = FakeDns({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    url = f"https://rebind.test:{receiver.port}/hook"
    await check_callback_url(url, UrlPolicy(), dns)
    async with guarded_client(UrlPolicy(), timeout=TIMEOUT, resolver=dns) as client:
        with pytest.raises(ForbiddenTarget, match=r"rebind\.test resolves to 127\.0\.0\.1"):
            await client.get(url)
    assert dns.calls == ["rebind.test", "rebind.test"]
    assert receiver.connections == []


async def test_unresolvable_at_send_is_a_connect_error() -> None:
    # Transient for the delivery layer: retried like any connect failure.
    dns = FakeDns({})
    async with guarded_client(UrlPolicy(), timeout=TIMEOUT, resolver=dns) as client:
        with pytest.raises(httpx.ConnectError, match="no A or AAAA record"):
            await client.get("https://gone.test/hook")


async def test_http_to_a_name_not_allow_listed_is_refused_before_any_lookup() -> None:
    dns = FakeDns({"evil.test": [["127.0.0.1"]]})
    async with guarded_client(LOOPBACK_DEV, timeout=TIMEOUT, resolver=dns) as client:
        with pytest.raises(ForbiddenTarget, match=r"http:// is not allowed for evil\.test"):
            await client.get("http://evil.test/hook")
    assert dns.calls == []


async def test_response_body_is_bounded(receiver: Receiver) -> None:
    async with guarded_client(LOOPBACK_DEV, timeout=TIMEOUT, max_response_bytes=1024) as client:
        with pytest.raises(ResponseTooLarge):
            await client.get(f"http://127.0.0.1:{receiver.port}/big")
        async with client.stream("GET", f"http://127.0.0.1:{receiver.port}/big") as r:
            assert r.status_code == 200  # the status is known before the body is read


async def test_proxy_environment_is_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy from the environment would be connected to instead of the checked address.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with guarded_client(LOOPBACK_DEV, timeout=TIMEOUT) as client:
        r = await client.get(f"http://127.0.0.1:{receiver.port}/hook")
    assert r.status_code == 200
    assert len(receiver.requests) == 1


# --- TLS: SNI and certificate verification still use the hostname ---------------------------


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=20)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=ssrf-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=hooks.test")
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:hooks.test\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return Pki(ca=d / "ca.pem", cert=d / "leaf.pem", key=d / "leaf.key")


async def test_tls_uses_the_hostname_for_sni_and_verification(pki: Pki) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki.cert, pki.key)
    receiver = Receiver()
    await receiver.start(server_tls)
    try:
        dns = FakeDns({"hooks.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
        policy = UrlPolicy(allow_http_hosts=frozenset({"hooks.test", "other.test"}))
        client_tls = ssl.create_default_context(cafile=str(pki.ca))
        async with guarded_client(policy, timeout=TIMEOUT, resolver=dns, verify=client_tls) as c:
            r = await c.get(f"https://hooks.test:{receiver.port}/tls")
            assert r.status_code == 200
            assert receiver.sni == ["hooks.test"]
            assert receiver.requests[0].host == f"hooks.test:{receiver.port}"
            # Same server, same checked address, another name: the certificate (hooks.test
            # only, no IP SAN) does not match, so verification is against the name.
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                await c.get(f"https://other.test:{receiver.port}/tls")
        assert receiver.sni == ["hooks.test", "other.test"]
        assert len(receiver.requests) == 1
    finally:
        await receiver.stop()
