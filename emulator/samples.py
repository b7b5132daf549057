"""Built-in product pictures, drawn at startup, so demos and tests have loopback images to fetch."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw

Painter = Callable[[ImageDraw.ImageDraw], None]


def _tee(draw: ImageDraw.ImageDraw) -> None:
    red = (210, 30, 40, 255)
    draw.polygon([(120, 60), (200, 40), (312, 40), (392, 60), (470, 140), (410, 200),
                  (380, 170), (380, 470), (132, 470), (132, 170), (102, 200), (42, 140)],
                 fill=red)  # fmt: skip
    draw.ellipse((206, 24, 306, 84), fill=(0, 0, 0, 0))


def _hoodie(draw: ImageDraw.ImageDraw) -> None:
    blue = (30, 70, 180, 255)
    draw.polygon([(110, 90), (190, 60), (322, 60), (402, 90), (480, 420), (420, 430),
                  (390, 220), (390, 490), (122, 490), (122, 220), (92, 430), (32, 420)],
                 fill=blue)  # fmt: skip
    draw.ellipse((186, 20, 326, 150), fill=(20, 50, 140, 255))
    draw.rectangle((200, 330, 312, 400), fill=(20, 50, 140, 255))


def _cap(draw: ImageDraw.ImageDraw) -> None:
    green = (20, 130, 60, 255)
    draw.pieslice((96, 140, 416, 460), 180, 360, fill=green)
    draw.rectangle((96, 296, 470, 320), fill=(10, 90, 40, 255))


_PAINTERS: dict[str, Painter] = {"red-tee": _tee, "blue-hoodie": _hoodie, "green-cap": _cap}


def render_samples() -> dict[str, bytes]:
    samples: dict[str, bytes] = {}
    for name, paint in _PAINTERS.items():
        img = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
        paint(ImageDraw.Draw(img))
        out = io.BytesIO()
        img.save(out, format="PNG")
        samples[name] = out.getvalue()
    return samples


def person_sample() -> bytes:
    """A drawn person photo (JPEG, 4:5) for demos that have no photo at hand."""
    img = Image.new("RGB", (800, 1000), (235, 228, 215))
    draw = ImageDraw.Draw(img)
    skin = (224, 180, 150)
    draw.ellipse((320, 100, 480, 290), fill=skin)
    draw.rounded_rectangle((230, 300, 570, 760), radius=70, fill=(200, 200, 200))
    draw.rectangle((270, 760, 390, 990), fill=(60, 60, 90))
    draw.rectangle((410, 760, 530, 990), fill=(60, 60, 90))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()
