"""BR Code payload -> QR code images (PNG, SVG), rendered in memory and cached."""

from __future__ import annotations

import io
from functools import lru_cache

import segno

# Medium error correction: what banking apps print on counter-top displays; a
# 150-character payload stays at version 7-9, easy to scan from a phone screen.
_ERROR = "m"
_BORDER = 4  # the quiet zone the QR standard requires
_TITLE = "QR Code Pix"


def _make(payload: str) -> segno.QRCode:
    return segno.make_qr(payload, error=_ERROR, boost_error=False)


@lru_cache(maxsize=2048)
def png(payload: str, scale: int = 8) -> bytes:
    """Render the payload as a PNG image."""
    buffer = io.BytesIO()
    _make(payload).save(buffer, kind="png", scale=scale, border=_BORDER)
    return buffer.getvalue()


@lru_cache(maxsize=2048)
def svg(payload: str, scale: int = 8) -> str:
    """Render the payload as a standalone SVG document that scales to any size."""
    qr = _make(payload)
    buffer = io.BytesIO()
    qr.save(
        buffer, kind="svg", scale=scale, border=_BORDER, xmldecl=False, light="#fff", title=_TITLE
    )
    # Keep the size and add the viewBox segno leaves out: an <img> sized by CSS then scales
    # the code instead of clipping it (a clipped QR loses its corner finders).
    width, height = qr.symbol_size(scale=scale, border=_BORDER)
    size = f'width="{width}" height="{height}"'
    return buffer.getvalue().decode().replace(size, f'{size} viewBox="0 0 {width} {height}"', 1)


@lru_cache(maxsize=2048)
def svg_inline(payload: str, scale: int = 6) -> str:
    """Render the payload as an <svg> element to embed in a page."""
    qr = _make(payload)
    # omitsize: a viewBox instead of fixed width/height, so CSS scales the code instead
    # of clipping it (a clipped QR loses its corner finders and cannot be scanned).
    return str(
        qr.svg_inline(scale=scale, border=_BORDER, light="#fff", title=_TITLE, omitsize=True)
    )
