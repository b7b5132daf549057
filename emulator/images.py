"""Image bytes: format sniffing, upload processing and result compositing, all with Pillow.

Formats are recognised by magic bytes, never by the declared content type. HEIC is accepted
(Genlook takes it) but Pillow cannot decode it without a plugin, so HEIC bytes are stored as sent
and a drawn placeholder stands in for them when compositing.
"""

from __future__ import annotations

import io
from typing import Literal

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from emulator.errors import ApiError

Kind = Literal["jpeg", "png", "webp", "heic"]

MAX_IMAGE_BYTES = 10 * 1024 * 1024
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}
_RESULT_SIZE = (800, 1000)


def sniff(data: bytes) -> Kind | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heic"
    return None


def invalid_image(message: str) -> ApiError:
    return ApiError(400, "INVALID_IMAGE", message)


def too_large() -> ApiError:
    return invalid_image(f"Image exceeds the {MAX_IMAGE_BYTES // (1024 * 1024)} MB limit.")


def decode(data: bytes) -> Image.Image | None:
    """A fully loaded RGB(A) image, or None when Pillow cannot read the bytes."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            oriented = ImageOps.exif_transpose(img)
            return oriented.convert("RGBA" if "A" in oriented.getbands() else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def validate(data: bytes) -> Kind:
    """Reject what Genlook rejects with INVALID_IMAGE: not an image, or malformed."""
    if len(data) > MAX_IMAGE_BYTES:
        raise too_large()
    kind = sniff(data)
    if kind is None:
        raise invalid_image("The file is not a JPEG, PNG, WebP or HEIC image.")
    if kind != "heic" and decode(data) is None:
        raise invalid_image("The image is truncated or malformed.")
    return kind


def process_upload(data: bytes, *, crop: bool) -> tuple[bytes, Kind]:
    """What upload does: fix orientation, crop to 4:5 if asked, store as JPEG."""
    kind = validate(data)
    if kind == "heic":
        return data, kind
    img = decode(data)
    assert img is not None
    if crop:
        img = _crop_4_5(img)
    return to_jpeg(img), "jpeg"


def _crop_4_5(img: Image.Image) -> Image.Image:
    # Centre crop; the "person-aware" part of the real crop is out of scope. At least one
    # pixel wide: a photo a pixel or two high would crop to nothing (Pillow cannot save that).
    w, h = img.size
    if w * 5 > h * 4:
        new_w = max(1, h * 4 // 5)
        left = (w - new_w) // 2
        return img.crop((left, 0, left + new_w, h))
    new_h = w * 5 // 4
    top = (h - new_h) // 2
    return img.crop((0, top, w, top + new_h))


def to_jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    if img.mode != "RGB":
        background = Image.new("RGB", img.size, "white")
        background.paste(img, mask=img.getchannel("A") if "A" in img.getbands() else None)
        img = background
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def person_placeholder() -> Image.Image:
    img = Image.new("RGB", _RESULT_SIZE, (225, 225, 230))
    draw = ImageDraw.Draw(img)
    draw.ellipse((320, 120, 480, 280), fill=(150, 150, 160))
    draw.rounded_rectangle((240, 300, 560, 900), radius=60, fill=(150, 150, 160))
    draw.text((20, 20), "HEIC preview unavailable", fill=(80, 80, 80))
    return img


def garment_placeholder() -> Image.Image:
    img = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((40, 40, 360, 360), fill=(120, 120, 120, 255))
    return img


def composite(
    person: Image.Image,
    garment: Image.Image,
    *,
    logo: bool,
    ai_label: bool,
) -> bytes:
    """Paste the garment over the torso area: crude, but visibly a function of both inputs."""
    base = person.convert("RGB")
    w, h = base.size
    target_w, target_h = int(w * 0.55), int(h * 0.45)
    item = garment.convert("RGBA")
    item.thumbnail((target_w, target_h))
    x = (w - item.width) // 2
    y = int(h * 0.28)
    base.paste(item, (x, y), mask=item.getchannel("A"))
    draw = ImageDraw.Draw(base)
    if logo:
        # Genlook puts the account's logo bottom-left.
        size = max(24, w // 10)
        draw.rectangle((8, h - size - 8, 8 + size, h - 8), fill=(20, 20, 20))
        draw.text((14, h - size), "G", fill=(255, 255, 255))
    if ai_label:
        draw.text((w - 110, 10), "AI-generated", fill=(255, 0, 0))
    return to_jpeg(base)
