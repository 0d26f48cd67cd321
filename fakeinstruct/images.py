"""Image checks and path confinement: an image must exist inside the dataset root and decode safely."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from fakeinstruct.errors import FakeChainError


@dataclass(frozen=True)
class ImageLimits:
    """Limits an image must meet; the pixel cap also stops decompression bombs before decoding."""

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 16
    formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")


DEFAULT_LIMITS = ImageLimits()


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` with symlinks resolved, refusing anything that ends up outside ``root``."""
    root = root.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise FakeChainError(f"{relative!r} resolves outside the dataset root {str(root)!r}", field="image")
    return target


def check_image(root: Path, relative: str, limits: ImageLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """Check that the image exists inside ``root``, is within the limits and decodes; return (width, height)."""
    from PIL import Image, UnidentifiedImageError

    path = resolve_inside(root, relative)
    if not path.is_file():
        raise FakeChainError(f"image file not found: {relative}", field="image")
    size = path.stat().st_size
    if size == 0:
        raise FakeChainError(f"image file is empty: {relative}", field="image")
    if size > limits.max_bytes:
        raise FakeChainError(f"image file is {size} bytes, over the limit of {limits.max_bytes}", field="image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > limits.max_pixels:
                    raise FakeChainError(
                        f"image is {width}x{height} pixels, over the limit of {limits.max_pixels}", field="image"
                    )
                if img.format not in limits.formats:
                    raise FakeChainError(f"image format {img.format} is not one of {limits.formats}", field="image")
                img.load()
    except FakeChainError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise FakeChainError(f"image does not decode: {err}", field="image") from err
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data surfaces as these in Pillow
        raise FakeChainError(f"image does not decode: {err}", field="image") from err
    if min(width, height) < limits.min_side:
        raise FakeChainError(f"image is {width}x{height}, smaller than {limits.min_side} px on a side", field="image")
    return width, height
