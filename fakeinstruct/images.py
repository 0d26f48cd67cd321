"""Image checks and path confinement: an image must exist inside the dataset root and decode safely."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from fakeinstruct.errors import FakeChainError
from fakeinstruct.files import resolve_inside


@dataclass(frozen=True)
class ImageLimits:
    """Limits an image must meet; the pixel cap also stops decompression bombs before decoding."""

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 16
    formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")


DEFAULT_LIMITS = ImageLimits()


def check_image(root: Path, relative: str, limits: ImageLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """Check that the image exists inside ``root``, is within the limits and decodes; return (width, height)."""
    path = resolve_inside(root, relative)
    if not path.is_file():
        raise FakeChainError(f"image file not found: {relative}", field="image")
    with open_image(path, limits, shown=relative) as img:
        return img.size


def open_image(path: str | Path, limits: ImageLimits = DEFAULT_LIMITS, *, shown: str | None = None):
    """Open and fully decode ``path`` within ``limits``; the caller closes the image (it is a context manager).

    ``shown`` is how the path appears in error messages (a dataset-relative path rather than an absolute one).
    """
    from PIL import Image, UnidentifiedImageError

    path, shown = Path(path), shown or str(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise FakeChainError(f"cannot read image {shown}: {err.strerror or err}", field="image") from err
    if size == 0:
        raise FakeChainError(f"image file is empty: {shown}", field="image")
    if size > limits.max_bytes:
        raise FakeChainError(f"image file is {size} bytes, over the limit of {limits.max_bytes}", field="image")
    img = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            width, height = img.size
            if width * height > limits.max_pixels:
                raise FakeChainError(
                    f"image is {width}x{height} pixels, over the limit of {limits.max_pixels}", field="image"
                )
            if img.format not in limits.formats:
                raise FakeChainError(f"image format {img.format} is not one of {limits.formats}", field="image")
            img.load()
    except FakeChainError:
        _close(img)
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        _close(img)
        raise FakeChainError(f"image does not decode: {err}", field="image") from err
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data surfaces as these in Pillow
        _close(img)
        raise FakeChainError(f"image does not decode: {err}", field="image") from err
    if min(width, height) < limits.min_side:
        img.close()
        raise FakeChainError(f"image is {width}x{height}, smaller than {limits.min_side} px on a side", field="image")
    return img


def _close(img) -> None:
    if img is not None:
        img.close()
