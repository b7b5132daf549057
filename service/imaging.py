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
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

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


def clean_photo(data: bytes, *, max_pixels: int, max_bytes: int) -> CleanPhoto:
    """The photo re-encoded from its pixels, upright and in sRGB; INVALID_IMAGE or
    IMAGE_TOO_LARGE when it cannot be."""
    codec = CODECS[sniff(data)]
    decoded = _decode(data, codec, max_pixels)
    pixels = _pixels_only(decoded, keep_alpha=codec.encode_as != "JPEG")
    encoded = _encode(pixels, codec.encode_as, lossless=_is_lossless_webp(data))
    if len(encoded) > max_bytes:
        raise image_too_large(f"The photo is larger than {max_bytes} bytes once re-encoded.")
    return CleanPhoto(encoded, codec.content_type, pixels.width, pixels.height)


def _decode(data: bytes, codec: Codec, max_pixels: int) -> Image.Image:
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
    try:
        image.load()  # a truncated file raises here (LOAD_TRUNCATED_IMAGES is False)
    except Image.DecompressionBombError:
        raise image_too_large(f"The photo has more than {max_pixels} pixels.") from None
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
    if image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        image = image.convert(mode)
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # a profile LittleCMS cannot use: the pixels are taken as sRGB
        if converted is not None:
            image = converted
    # Always a new plain Image: the decoder's object keeps format-specific state.
    image = image.convert(mode) if image.mode != mode else image.copy()
    image.info = {}
    return image


def _is_lossless_webp(data: bytes) -> bool:
    # A simple-format WebP whose only chunk is VP8L was encoded losslessly: keep it lossless.
    return data[8:12] == b"WEBP" and data[12:16] == b"VP8L"


def _encode(image: Image.Image, fmt: str, *, lossless: bool) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif fmt == "PNG":
        image.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif lossless:
        image.save(buf, "WEBP", lossless=True, method=WEBP_METHOD)
    else:
        image.save(buf, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return buf.getvalue()
