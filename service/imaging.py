"""Person photos made safe to keep and to send upstream: pure functions, no I/O.

`clean_photo` takes the bytes a browser sent and returns bytes made of the photo's pixels
alone: the type is read from the magic bytes, the header's width x height is checked against a
pixel limit before a single pixel is decoded (decompression bombs), the whole image is decoded
(truncated or corrupt files are refused), EXIF orientation is applied to the pixels, colours are
converted to sRGB when the photo carries an ICC profile, and the result is encoded again with
fixed settings. Everything else the file held never leaves this module: EXIF (GPS included),
XMP, comments, text chunks, the ICC profile itself, and anything appended after the image (a ZIP
or a script in a polyglot). The same input always gives the same output, so identical uploads
still share one content hash (and one upstream upload).

Memory, not only pixels, is what a photo costs: a 5 KB 1-bit PNG of 6300x6300 (under the pixel
limit) decodes to 40 MB and becomes a 160 MB RGB image. So cleaning is two steps. `open_photo`
reads the header alone and says how many bytes decoding will take at most (`Opened.peak_bytes`);
the caller reserves them from a budget shared by concurrent cleanings (service/byte_budget.py)
before `finish_photo` decodes. The estimate follows what `finish_photo` holds at once: the
decoded image (its mode's bytes per pixel) and one 4-byte-per-pixel copy being made from it,
plus the encoded output, which is cut at `max_bytes`.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import pillow_heif
import puremagic
from PIL import Image, ImageCms, ImageFile, ImageOps

from service.domain_errors import InvalidInput, Unprocessable

# Makes Pillow read HEIC/HEIF (iPhone photos); the decoder ships inside the wheel.
pillow_heif.register_heif_opener()


@dataclass(frozen=True)
class Codec:
    """How one accepted input type is decoded and what it is stored as."""

    decode_as: str
    encode_as: str
    content_type: str


# Browsers cannot display HEIC and Genlook turns it into JPEG anyway: it is stored as JPEG.
CODECS = {
    "image/jpeg": Codec("JPEG", "JPEG", "image/jpeg"),
    "image/png": Codec("PNG", "PNG", "image/png"),
    "image/webp": Codec("WEBP", "WEBP", "image/webp"),
    "image/heic": Codec("HEIF", "JPEG", "image/jpeg"),
}
_ALIASES = {"image/heif": "image/heic"}
# Major brands of HEIF still images (ISO/IEC 23008-12), HEVC-coded or generic.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"})
JPEG_QUALITY = 92
WEBP_QUALITY = 90
# Encoder effort: Pillow's defaults (PNG 6, WebP 4) took 2-4x longer on a 12 MP photo for a few
# percent smaller files, and one cleaning thread serves every upload.
PNG_COMPRESS_LEVEL = 3
WEBP_METHOD = 2
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# Bytes per pixel of Pillow's in-memory modes; every other mode (RGB included: it is stored as
# RGBX) takes 4. A cleaned image is RGB or RGBA: 4.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_CLEAN_BYTES = 4
# Modes `_pixels_only` takes as they are; others are converted first.
_PLAIN_MODES = ("RGB", "RGBA", "CMYK", "L")
# Encoder buffers and the output's slack beyond `max_bytes`.
_ENCODE_SLACK = 64 * 1024


@dataclass(frozen=True)
class CleanPhoto:
    data: bytes
    content_type: str
    width: int
    height: int


def invalid_image(message: str) -> InvalidInput:
    return InvalidInput("INVALID_IMAGE", message)


def image_too_large(message: str) -> Unprocessable:
    # Unprocessable (422), not 413: the request was within the byte limit; what it describes
    # cannot be processed.
    return Unprocessable("IMAGE_TOO_LARGE", message)


def sniff(data: bytes) -> str:
    """The photo's MIME type from its magic bytes (a key of CODECS), or INVALID_IMAGE."""
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        # puremagic ranks an iPhone photo (`ftypheic`) as video/mp4; the brand is decisive.
        return "image/heic"
    try:
        mime = str(puremagic.from_string(data[:4096], mime=True))
    except (puremagic.PureError, ValueError):
        mime = ""
    mime = _ALIASES.get(mime, mime)
    if mime not in CODECS:
        raise invalid_image("The file is not a JPEG, PNG, WebP or HEIC image.")
    return mime


@dataclass
class Opened:
    """A photo whose header was read and checked; its pixels are not decoded yet."""

    codec: Codec
    image: Image.Image | None  # handed over to `finish_photo`, which lets go of it early
    lossless: bool
    # The most memory `finish_photo` will hold for it at once.
    peak_bytes: int

    def take_image(self) -> Image.Image:
        image, self.image = self.image, None
        if image is None:
            raise RuntimeError("an opened photo is finished once")
        return image


def clean_photo(data: bytes, *, max_pixels: int, max_bytes: int) -> CleanPhoto:
    """The photo re-encoded from its pixels, upright and in sRGB; INVALID_IMAGE or
    IMAGE_TOO_LARGE when it cannot be."""
    return finish_photo(open_photo(data, max_pixels=max_pixels, max_bytes=max_bytes), max_bytes)


def open_photo(data: bytes, *, max_pixels: int, max_bytes: int) -> Opened:
    """The photo's type and header, checked against the pixel limit, and what decoding it will
    cost in memory; nothing is decoded (INVALID_IMAGE / IMAGE_TOO_LARGE)."""
    codec = CODECS[sniff(data)]
    image = _open(data, codec, max_pixels)
    return Opened(
        codec,
        image,
        _is_lossless_webp(data),
        peak_bytes(
            image.width,
            image.height,
            image.mode,
            codec,
            has_icc=bool(image.info.get("icc_profile")),
            max_bytes=max_bytes,
        ),
    )


def peak_bytes(
    width: int, height: int, mode: str, codec: Codec, *, has_icc: bool, max_bytes: int
) -> int:
    """What `finish_photo` holds at once for a `mode` image of width x height: the decoded
    image and the copy being made from it (two copies when a mode that is first converted
    carries an ICC profile: converted, then colour-managed), plus the encoded output. Every
    format read here has its ICC profile in the header, before the pixels."""
    pixels = width * height
    decoded = _MODE_BYTES.get(mode, 4)
    per_pixel = decoded + _CLEAN_BYTES
    if mode not in _PLAIN_MODES and has_icc:
        per_pixel = max(per_pixel, 2 * _CLEAN_BYTES)
    if codec.decode_as == "HEIF":
        per_pixel += decoded  # pillow-heif decodes into its own buffer, then Pillow copies it
    return pixels * per_pixel + min(max_bytes, pixels * _CLEAN_BYTES) + _ENCODE_SLACK


def finish_photo(opened: Opened, max_bytes: int) -> CleanPhoto:
    """Decode an opened photo and re-encode its pixels (INVALID_IMAGE / IMAGE_TOO_LARGE)."""
    # The decoded image is only ever referenced by the next step, so each conversion frees
    # the image it came from: at most two are alive at once (what `peak_bytes` counts).
    pixels = _pixels_only(_load(opened.take_image()), keep_alpha=opened.codec.encode_as != "JPEG")
    encoded = _encode(pixels, opened.codec.encode_as, lossless=opened.lossless, limit=max_bytes)
    return CleanPhoto(encoded, opened.codec.content_type, pixels.width, pixels.height)


def _open(data: bytes, codec: Codec, max_pixels: int) -> Image.Image:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    try:
        # Only the sniffed format's decoder: no other plugin gets to interpret the bytes.
        image = Image.open(io.BytesIO(data), formats=[codec.decode_as])
    except Image.DecompressionBombError:
        raise image_too_large(f"The photo has more than {max_pixels} pixels.") from None
    except Exception:
        # Pillow's plugins raise many types on hostile input; any of them means "not readable".
        raise invalid_image("The image cannot be read.") from None
    width, height = image.size
    if width * height > max_pixels:
        raise image_too_large(
            f"The photo is {width}x{height}; at most {max_pixels} pixels are accepted."
        )
    return image


def _load(image: Image.Image) -> Image.Image:
    try:
        image.load()  # a truncated file raises here (LOAD_TRUNCATED_IMAGES is False)
    except Image.DecompressionBombError:
        raise image_too_large("The photo has too many pixels.") from None
    except Exception:
        raise invalid_image("The image is truncated or corrupt.") from None
    # Unreadable EXIF says nothing reliable about orientation: the pixels stay as stored.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(image, in_place=True)
    return image


def _pixels_only(image: Image.Image, *, keep_alpha: bool) -> Image.Image:
    """A plain RGB(A) image in sRGB that carries no metadata at all."""
    mode = "RGBA" if keep_alpha and image.has_transparency_data else "RGB"
    icc = image.info.get("icc_profile")
    decoded = True  # `image` is still the decoder's object
    if image.mode not in _PLAIN_MODES:
        image, decoded = image.convert(mode), False
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # a profile LittleCMS cannot use: the pixels are taken as sRGB
        if converted is not None:
            image, decoded = converted, False
    # Always a new plain Image: the decoder's object keeps format-specific state. One made
    # by a conversion above already is one; copying it again would cost a third image.
    if image.mode != mode:
        image = image.convert(mode)
    elif decoded:
        image = image.copy()
    image.info = {}
    return image


def _is_lossless_webp(data: bytes) -> bool:
    # A simple-format WebP whose only chunk is VP8L was encoded losslessly: keep it lossless.
    return data[8:12] == b"WEBP" and data[12:16] == b"VP8L"


class _CappedBuffer(io.BytesIO):
    """An output that refuses to grow past `limit`: a photo too large once encoded is refused
    as soon as it is, without holding (or computing) the rest."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def write(self, data: Any, /) -> int:
        if self.tell() + len(data) > self._limit:
            raise _OutputTooLarge
        return super().write(data)


class _OutputTooLarge(Exception):
    pass


def _encode(image: Image.Image, fmt: str, *, lossless: bool, limit: int) -> bytes:
    buf = _CappedBuffer(limit)
    try:
        _save(image, buf, fmt, lossless=lossless)
    except _OutputTooLarge:
        raise image_too_large(f"The photo is larger than {limit} bytes once re-encoded.") from None
    return buf.getvalue()


def _save(image: Image.Image, buf: io.BytesIO, fmt: str, *, lossless: bool) -> None:
    if fmt == "JPEG":
        image.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif fmt == "PNG":
        image.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif lossless:
        image.save(buf, "WEBP", lossless=True, method=WEBP_METHOD)
    else:
        image.save(buf, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
