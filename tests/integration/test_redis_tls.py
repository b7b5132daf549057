"""`rediss://` options: the auto-pipeline reads a URL as redis-py does (its TLS context is
redis-py's own), refuses at start-up what it cannot honour, and connects over real TLS to a
private `redis-server --tls-port` whose certificate a test CA signed."""

from __future__ import annotations

import datetime
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from service.autopipeline import AutoPipeline
from service.devstack import free_port, port_answers
from service.redis_conn import direct_target


def _cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for `localhost` and a client certificate, as PEM files."""
    root = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", ca_key)
    _write(root / "ca", ca, ca_key)
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(root / name, _cert(name, key, (ca.subject, ca_key)), key)
    return root


@pytest.fixture(scope="module")
def tls_redis(pki: Path) -> Iterator[int]:
    """A private redis-server on TLS only, requiring a client certificate signed by the CA."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(pki / "server.crt"), "--tls-key-file", str(pki / "server.key"),
         "--tls-ca-cert-file", str(pki / "ca.crt"), "--tls-auth-clients", "yes", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            if port_answers("127.0.0.1", port):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _url(port: int, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"rediss://localhost:{port}/3?{query}"


def _client_options(pki: Path) -> dict[str, str]:
    return {
        "ssl_ca_certs": str(pki / "ca.crt"),
        "ssl_certfile": str(pki / "client.crt"),
        "ssl_keyfile": str(pki / "client.key"),
    }


async def test_the_pipeline_and_redis_py_connect_with_the_same_tls_options(
    tls_redis: int, pki: Path
) -> None:
    url = _url(tls_redis, **_client_options(pki), ssl_check_hostname="true")
    pipeline = AutoPipeline(url, connect_timeout=5, command_timeout=5)
    client = Redis.from_url(url)
    try:
        assert await pipeline.execute("SET", "k", "from the pipeline") == b"OK"
        assert await client.get("k") == b"from the pipeline"  # and the same database (3)
    finally:
        await pipeline.aclose()
        await client.aclose()


async def test_without_the_ca_the_server_is_not_trusted(tls_redis: int, pki: Path) -> None:
    options = {**_client_options(pki)}
    del options["ssl_ca_certs"]
    pipeline = AutoPipeline(_url(tls_redis, **options), connect_timeout=5, command_timeout=5)
    try:
        with pytest.raises(RedisConnectionError):
            await pipeline.execute("PING")
    finally:
        await pipeline.aclose()


def test_tls_options_are_redis_py_s(pki: Path) -> None:
    default = direct_target("rediss://cache.internal:6380/2")
    assert default.tls is not None
    # redis-py's defaults: a certificate is required, the host name is not checked.
    assert (default.tls.verify_mode, default.tls.check_hostname) == (ssl.CERT_REQUIRED, False)
    assert (default.host, default.port, default.db) == ("cache.internal", 6380, 2)
    relaxed = direct_target("rediss://h/0?ssl_cert_reqs=none")
    assert relaxed.tls is not None
    assert relaxed.tls.verify_mode == ssl.CERT_NONE
    strict = direct_target(f"rediss://h/0?ssl_check_hostname=true&ssl_ca_certs={pki / 'ca.crt'}")
    assert strict.tls is not None
    assert strict.tls.check_hostname
    # Loaded besides the system's CAs, as redis-py does.
    assert ((("commonName", "test CA"),),) in [c["subject"] for c in strict.tls.get_ca_certs()]
    assert direct_target("redis://:pw@h:7000/5").tls is None
    assert direct_target("redis://h/0?max_connections=50&health_check_interval=5").db == 0


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("rediss://h/0?ssl_ca_certs=/no/such/ca.pem", "TLS options"),
        ("rediss://h/0?ssl_cert_reqs=sometimes", "TLS options"),
        ("rediss://h/0?ssl_no_such_option=1", "TLS options"),
        ("redis://h/0?ssl_ca_certs=/etc/ca.pem", "need a rediss://"),
        ("redis://h/0?client_name=gw", "client_name"),
        ("redis://h/0?socket_timeout=3", "socket_timeout"),
        ("redis://h/0?protocol=3", "protocol"),
    ],
)
def test_what_the_pipeline_cannot_honour_stops_it_at_start_up(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        AutoPipeline(url, connect_timeout=1, command_timeout=1)
