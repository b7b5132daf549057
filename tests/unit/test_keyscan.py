"""The run's Genlook key scan (tests/keyscan.py) sees a key wherever it would leak: a header, a
body, a streamed body split across chunks, a log record, a log file; and not where it is not."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from tests.keyscan import KeyScan

KEY = "gk_unit_scan_key_0123456789"


def _transport(body: list[bytes], headers: dict[str, str] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers or {}, content=iter(body))

    return httpx.MockTransport(handler)


def _get(scan: KeyScan, transport: httpx.MockTransport, *, stream: bool) -> None:
    with httpx.Client(transport=transport, base_url="http://gw") as client:
        request = client.build_request("GET", "/x")
        response = client.send(request, stream=stream)
        scan.check_response(response)
        response.read()
        response.close()


def test_sees_the_key_in_headers_bodies_and_chunks() -> None:
    scan = KeyScan([KEY])
    _get(scan, _transport([b"clean"]), stream=False)
    assert scan.findings == []
    _get(scan, _transport([b"ok"], {"x-debug": KEY}), stream=False)
    _get(scan, _transport([f"leaked {KEY}".encode()]), stream=False)
    half = len(KEY) // 2
    _get(scan, _transport([KEY[:half].encode(), KEY[half:].encode()]), stream=True)
    assert len(scan.findings) == 3
    assert "headers" in scan.findings[0]
    assert all("body" in f for f in scan.findings[1:])


def test_skips_the_emulators_own_answers() -> None:
    scan = KeyScan([KEY])
    scan.skip_origin("http://gw")
    _get(scan, _transport([KEY.encode()]), stream=False)
    assert scan.findings == []


def test_sees_the_key_in_log_records_and_files(tmp_path: Path) -> None:
    scan = KeyScan([KEY])
    scan.install()
    try:
        logging.getLogger("leaky").warning("calling with %s", KEY)
    finally:
        scan.uninstall()
    (tmp_path / "worker.log").write_text(f'{{"msg": "Authorization: Bearer {KEY}"}}\n')
    (tmp_path / "gateway.log").write_text('{"msg": "fine"}\n')
    findings = scan.finish([tmp_path])
    # The record is seen by the logging handler (and, once an in-process app configured
    # logging earlier in the run, by the line writer too).
    assert "log record leaky: contains the Genlook key" in findings
    files = [f for f in findings if f.startswith(str(tmp_path))]
    assert files == [f"{tmp_path / 'worker.log'}: contains the Genlook key"]
