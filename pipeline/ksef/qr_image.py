"""QR code images (PNG, SVG) with the label KSeF asks for under the code.

The symbol is ISO/IEC 18004 via segno (error correction M, 4-module quiet zone); the
label (KSeF number, OFFLINE or CERTYFIKAT) is centred below it. When the label is wider
than the code, the canvas widens so the text is never clipped. Output is deterministic:
the same link and label always give the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

import segno
from PIL import Image, ImageDraw, ImageFont

ERROR_LEVEL = "m"
QUIET_ZONE = 4
DEFAULT_SCALE = 5
_SVG_CHAR_WIDTH = 0.6  # average advance of a sans-serif glyph, in font sizes


def qr_matrix(text: str) -> tuple[tuple[bool, ...], ...]:
    """Dark (True) / light modules of the symbol encoding `text`, without quiet zone."""
    code = segno.make(text, error=ERROR_LEVEL, micro=False, boost_error=False)
    return tuple(tuple(bool(cell) for cell in row) for row in code.matrix)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Pixel geometry shared by both renderers."""

    modules: int
    scale: int
    font_size: int
    width: int
    code_left: int
    code_size: int
    label_top: int
    height: int


def _layout(modules: int, scale: int, label_width: int, font_size: int) -> _Layout:
    code_size = (modules + 2 * QUIET_ZONE) * scale
    width = max(code_size, label_width + 2 * QUIET_ZONE * scale)
    label_top = code_size
    height = label_top + font_size * 2
    return _Layout(
        modules, scale, font_size, width, (width - code_size) // 2, code_size, label_top, height
    )


def _font_size(scale: int) -> int:
    return max(10, 3 * scale)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_png(text: str, label: str, scale: int = DEFAULT_SCALE) -> bytes:
    """PNG (8-bit grey) of the code for `text` with `label` centred under it."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1 pixel per module, got {scale}")
    matrix = qr_matrix(text)
    font = _font(_font_size(scale))
    left, top, right, bottom = font.getbbox(label)
    layout = _layout(len(matrix), scale, int(right - left), _font_size(scale))
    image = Image.new("L", (layout.width, layout.height), 255)
    draw = ImageDraw.Draw(image)
    origin = layout.code_left + QUIET_ZONE * scale
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                x0, y0 = origin + x * scale, QUIET_ZONE * scale + y * scale
                draw.rectangle((x0, y0, x0 + scale - 1, y0 + scale - 1), fill=0)
    text_x = (layout.width - (right - left)) / 2 - left
    text_y = layout.label_top + (layout.height - layout.label_top - (bottom - top)) / 2 - top
    draw.text((text_x, text_y), label, fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def render_svg(text: str, label: str, scale: int = DEFAULT_SCALE) -> str:
    """Standalone SVG of the code for `text` with `label` as real text under it."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1 pixel per module, got {scale}")
    matrix = qr_matrix(text)
    font_size = _font_size(scale)
    label_width = int(len(label) * font_size * _SVG_CHAR_WIDTH)
    layout = _layout(len(matrix), scale, label_width, font_size)
    path = "".join(
        f"M{x} {y}h1v1h-1z" for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark
    )
    offset_x = layout.code_left + QUIET_ZONE * scale
    offset_y = QUIET_ZONE * scale
    baseline = layout.label_top + (layout.height - layout.label_top + font_size * 0.7) / 2
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" '
        f'height="{layout.height}" viewBox="0 0 {layout.width} {layout.height}">\n'
        f'<rect width="{layout.width}" height="{layout.height}" fill="#fff"/>\n'
        f'<path transform="translate({offset_x} {offset_y}) scale({scale})" '
        f'fill="#000" shape-rendering="crispEdges" d="{path}"/>\n'
        f'<text x="{layout.width / 2:g}" y="{baseline:g}" font-family="Arial, Helvetica, '
        f'sans-serif" font-size="{font_size}" text-anchor="middle" fill="#000">'
        f"{escape(label)}</text>\n"
        "</svg>\n"
    )
