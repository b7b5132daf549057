"""The SSRF guard's rules, without a network: address table, URL syntax, resolution (fake)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from service.webhooks.ssrf import (
    FORBIDDEN,
    INVALID,
    UNRESOLVABLE,
    ForbiddenTarget,
    IPAddress,
    Resolver,
    UnresolvableTarget,
    UrlPolicy,
    check_address,
    check_callback_url,
    classify_address,
    resolve_and_check,
    validate_url,
)

PROD = UrlPolicy()
DEV = UrlPolicy(allow_http_hosts=frozenset({"127.0.0.1", "localhost", "[::1]", "Hooks.Dev"}))

# address -> expected label (None: public, allowed). Every range the issue lists, at its edges.
ADDRESSES: list[tuple[str, str | None]] = [
    # public
    ("93.184.216.34", None),
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001:80b::200e", None),
    ("::ffff:93.184.216.34", None),  # IPv4-mapped public: allowed
    ("64:ff9b::8.8.8.8", None),  # NAT64 of a public address: allowed
    ("2002:5db8:d822::1", None),  # 6to4 of 93.184.216.34: allowed
    # 0.0.0.0/8 and unspecified
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this-network 0.0.0.0/8"),
    ("0.255.255.255", "this-network 0.0.0.0/8"),
    # RFC 1918
    ("10.0.0.5", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    # just outside RFC 1918
    ("172.15.255.255", None),
    ("172.32.0.1", None),
    # CGNAT
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("100.63.255.255", None),
    ("100.128.0.0", None),
    # loopback
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    # link-local and metadata
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("169.254.0.1", "link-local"),
    ("169.254.255.255", "link-local"),
    # special purpose and documentation
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.0.170", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    # multicast, reserved, broadcast
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.254", "reserved"),
    ("255.255.255.255", "broadcast"),
    # IPv6 loopback / unspecified
    ("::1", "loopback"),
    ("::", "unspecified"),
    # IPv4-mapped: the embedded address decides
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"),
    ("::ffff:10.0.0.5", "IPv4-mapped 10.0.0.5: private"),
    ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254: cloud metadata"),
    ("::ffff:a9fe:a9fe", "IPv4-mapped 169.254.169.254: cloud metadata"),
    ("::ffff:0.0.0.0", "IPv4-mapped 0.0.0.0: unspecified"),
    # IPv4-compatible (deprecated) and IPv4-translated: outside 2000::/3
    ("::127.0.0.1", "reserved"),
    ("::ffff:0:10.0.0.5", "reserved"),
    # NAT64 / 6to4 / Teredo embeddings
    ("64:ff9b::10.0.0.5", "NAT64 10.0.0.5: private"),
    ("64:ff9b::169.254.169.254", "NAT64 169.254.169.254: cloud metadata"),
    ("64:ff9b:1::a00:5", "local-use NAT64"),
    ("2002:7f00:1::1", "6to4 127.0.0.1: loopback"),
    ("2002:a9fe:a9fe::", "6to4 169.254.169.254: cloud metadata"),
    ("2002:c0a8:101::1", "6to4 192.168.1.1: private"),
    # Teredo: client address is the bitwise inverse of the last 32 bits (10.0.0.5 here)
    ("2001:0:4136:e378:8000:63bf:f5ff:fffa", "Teredo 10.0.0.5: private"),
    ("2001:0:4136:e378:8000:63bf:a247:4bdd", "Teredo"),
    # ULA, link-local, site-local, multicast, metadata
    ("fc00::1", "unique-local"),
    ("fd12:3456:789a::1", "unique-local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff05::1:3", "multicast"),
    # other IPv6 special ranges
    ("100::1", "discard-only"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:10::1", "IETF protocol assignments"),
    ("2001:2::1", "IETF protocol assignments"),
    ("4000::1", "reserved"),
    ("fe00::1", "reserved"),
]


@pytest.mark.parametrize(("address", "label"), ADDRESSES)
def test_address_table(address: str, label: str | None) -> None:
    ip = ipaddress.ip_address(address)
    blocked = classify_address(ip)
    assert (blocked.label if blocked else None) == label
    if label is None:
        check_address(ip, PROD, "hooks.example.com")
    else:
        with pytest.raises(ForbiddenTarget) as caught:
            check_address(ip, PROD, "hooks.example.com")
        assert caught.value.code == FORBIDDEN
        assert caught.value.reason == f"hooks.example.com resolves to {ip} ({label})"


def test_reason_for_a_literal_names_the_address() -> None:
    with pytest.raises(ForbiddenTarget) as caught:
        validate_url("https://10.0.0.5/hook", PROD)
    assert caught.value.code == FORBIDDEN
    assert caught.value.reason == "10.0.0.5 is not a public address (private)"
    assert str(caught.value) == "CALLBACK_URL_FORBIDDEN: 10.0.0.5 is not a public address (private)"


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.5", "192.168.1.1", "::1", "fd00::1", "::ffff:127.0.0.1"]
)
def test_allow_listed_host_reaches_loopback_and_private(address: str) -> None:
    check_address(ipaddress.ip_address(address), DEV, "localhost")
    check_address(ipaddress.ip_address(address), DEV, "hooks.dev")  # case-folded at policy


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "fd00:ec2::254",
        "169.254.1.1",
        "fe80::1",
        "224.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo embedding 127.0.0.1
    ],
)
def test_allow_list_never_opens_metadata_link_local_or_special(address: str) -> None:
    with pytest.raises(ForbiddenTarget):
        check_address(ipaddress.ip_address(address), DEV, "localhost")


def test_allow_list_is_per_host() -> None:
    with pytest.raises(ForbiddenTarget, match=r"evil\.test resolves to 127\.0\.0\.1 \(loopback\)"):
        check_address(ipaddress.ip_address("127.0.0.1"), DEV, "evil.test")


# --- URL syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code", "reason"),
    [
        ("ftp://hooks.example.com/x", INVALID, "scheme 'ftp' is not supported"),
        ("file:///etc/passwd", INVALID, "scheme 'file' is not supported"),
        ("gopher://hooks.example.com/", INVALID, "scheme 'gopher'"),
        ("hooks.example.com/x", INVALID, "scheme '(none)'"),
        ("https:///x", INVALID, "URL has no host"),
        ("https://user:pw@hooks.example.com/", INVALID, "credentials"),
        ("https://user@hooks.example.com/", INVALID, "credentials"),
        ("https://hooks.example.com/x#frag", INVALID, "fragment"),
        ("https://hooks.example.com:0/", INVALID, "port 0 is out of range"),
        ("https://hooks.example.com:65536/", INVALID, "port 65536 is out of range"),
        ("https://hooks.example.com/" + "a" * 2100, INVALID, "longer than 2048"),
        ("https://[::1/", INVALID, "does not parse"),
        ("http://hooks.example.com/x", FORBIDDEN, "http:// is not allowed for hooks.example.com"),
        ("http://10.0.0.5/", FORBIDDEN, "http:// is not allowed"),
        ("https://127.1/", INVALID, "non-canonical IPv4"),
        ("https://2130706433/", INVALID, "non-canonical IPv4"),
        ("https://0x7f.0.0.1/", INVALID, "non-canonical IPv4"),
        ("https://127.0.0.1/", FORBIDDEN, "127.0.0.1 is not a public address (loopback)"),
        ("https://[::ffff:169.254.169.254]/", FORBIDDEN, "cloud metadata"),
        ("https://169.254.169.254/latest/meta-data/", FORBIDDEN, "(cloud metadata)"),
        ("https://[fe80::1%25eth0]/", FORBIDDEN, "link-local"),
        ("https://0.0.0.0:8080/", FORBIDDEN, "unspecified"),
    ],
)
def test_url_refused(url: str, code: str, reason: str) -> None:
    with pytest.raises(ForbiddenTarget) as caught:
        validate_url(url, PROD)
    assert caught.value.code == code
    assert reason in caught.value.reason


def test_url_accepted_and_normalised() -> None:
    target = validate_url("https://Hooks.Example.COM/path?q=1", PROD)
    assert (target.scheme, target.host, target.port, target.ip) == (
        "https",
        "hooks.example.com",
        443,
        None,
    )
    assert validate_url("https://bücher.example:8443/", PROD).host == "xn--bcher-kva.example"
    literal = validate_url("https://[2606:4700:4700::1111]/", PROD)
    assert literal.ip == ipaddress.ip_address("2606:4700:4700::1111")


def test_http_only_for_allow_listed_hosts() -> None:
    assert validate_url("http://127.0.0.1:8000/hook", DEV).port == 8000
    assert validate_url("http://localhost/hook", DEV).port == 80
    assert validate_url("http://[::1]:9/hook", DEV).host == "::1"
    with pytest.raises(ForbiddenTarget, match="http:// is not allowed"):
        validate_url("http://127.0.0.2/", DEV)


def test_max_length_and_ports_are_policy() -> None:
    short = UrlPolicy(max_url_length=30)
    validate_url("https://hooks.example.com/abcd", short)  # exactly 30
    with pytest.raises(ForbiddenTarget, match="longer than 30"):
        validate_url("https://hooks.example.com/abcde", short)  # 31 characters
    ports = UrlPolicy(allowed_ports=frozenset({443}))
    validate_url("https://hooks.example.com/", ports)
    with pytest.raises(ForbiddenTarget) as caught:
        validate_url("https://hooks.example.com:6379/", ports)
    assert (caught.value.code, caught.value.reason) == (FORBIDDEN, "port 6379 is not allowed")


# --- resolution (fake resolver) -----------------------------------------------------------------


def fake_resolver(table: dict[str, list[str]]) -> tuple[list[str], Resolver]:
    calls: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address(a) for a in table.get(host, [])]

    return calls, resolve


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["10.0.0.5"], "hooks.example.com resolves to 10.0.0.5 (private)"),
        (["169.254.169.254"], "hooks.example.com resolves to 169.254.169.254 (cloud metadata)"),
        (["::1"], "hooks.example.com resolves to ::1 (loopback)"),
        (
            ["::ffff:10.0.0.5"],
            # str() of a mapped address differs across Python versions: compute it
            f"hooks.example.com resolves to {ipaddress.ip_address('::ffff:10.0.0.5')}"
            " (IPv4-mapped 10.0.0.5: private)",
        ),
        # mixed records: one public, one private -> refused, whatever the order
        (["93.184.216.34", "10.0.0.5"], "hooks.example.com resolves to 10.0.0.5 (private)"),
        (["2606:4700::1", "fd00::5"], "hooks.example.com resolves to fd00::5 (unique-local)"),
        (["127.0.0.1", "93.184.216.34"], "hooks.example.com resolves to 127.0.0.1 (loopback)"),
    ],
)
async def test_hostname_resolving_to_blocked_address(answers: list[str], reason: str) -> None:
    calls, resolve = fake_resolver({"hooks.example.com": answers})
    with pytest.raises(ForbiddenTarget) as caught:
        await check_callback_url("https://hooks.example.com/hook", PROD, resolve)
    assert (caught.value.code, caught.value.reason) == (FORBIDDEN, reason)
    assert calls == ["hooks.example.com"]


async def test_hostname_resolving_to_public_addresses() -> None:
    calls, resolve = fake_resolver({"hooks.example.com": ["93.184.216.34", "2606:4700::1"]})
    target = validate_url("https://hooks.example.com/hook", PROD)
    addresses = await resolve_and_check(target, PROD, resolve)
    assert calls == ["hooks.example.com"]
    assert addresses == [
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("2606:4700::1"),
    ]


async def test_literal_is_not_resolved() -> None:
    calls, resolve = fake_resolver({})
    target = validate_url("https://93.184.216.34/hook", PROD)
    assert await resolve_and_check(target, PROD, resolve) == [target.ip]
    assert calls == []


async def test_unresolvable_host() -> None:
    _, resolve = fake_resolver({})
    with pytest.raises(UnresolvableTarget) as caught:
        await check_callback_url("https://nowhere.example/", PROD, resolve)
    assert caught.value.code == UNRESOLVABLE
    assert isinstance(caught.value, ForbiddenTarget)  # one `except` at registration


async def test_resolver_os_error_is_unresolvable() -> None:
    async def broken(host: str, port: int) -> Sequence[IPAddress]:
        raise OSError("Temporary failure in name resolution")

    with pytest.raises(UnresolvableTarget, match="does not resolve"):
        await check_callback_url("https://hooks.example.com/", PROD, broken)


async def test_system_resolver_on_localhost_is_checked() -> None:
    # The default resolver (getaddrinfo): "localhost" resolves to loopback, which is refused
    # unless the host is allow-listed. No network beyond the local resolver.
    with pytest.raises(ForbiddenTarget, match=r"localhost resolves to .* \(loopback\)"):
        await check_callback_url("https://localhost/hook", PROD)
    await check_callback_url("http://localhost/hook", DEV)
