"""The one image loader: path confinement, limits checked before decoding, and every supported mode to 8-bit RGB.

:func:`open_image` decodes within the limits; :func:`to_rgb` makes 8-bit RGB of any mode Pillow gives, or refuses one
it cannot convert faithfully; :func:`load_rgb` does both (detection, drafting's measurements); :func:`check_image` is
what a dataset image must pass (validate, generate, draft).
"""

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


# Pillow modes by what they hold. 16-bit greyscale (a 16-bit PNG or TIFF) is scaled to 8 bits; the 8-bit modes are
# converted as Pillow converts them, transparency composited onto white as transformers' image processors do, so that
# scoring sees what training saw. 16-bit colour PNGs open as RGB/RGBA already (Pillow keeps their high bytes).
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
EIGHT_BIT = ("1", "L", "P", "RGB", "RGBA", "RGBX", "LA", "PA", "CMYK", "YCbCr")
_REFUSED = {
    "I": "32-bit integer pixels, of no known range",
    "F": "32-bit float pixels, of no known range",
    "LAB": "CIELab colour, which needs colour management to become RGB",
    "HSV": "HSV colour",
}


def _unsupported(mode: str) -> FakeChainError:
    what = _REFUSED.get(mode, "a mode without a faithful RGB conversion")
    return FakeChainError(f"image mode {mode} ({what}) is not supported: save it as 8-bit RGB", field="image")


def to_rgb(img):
    """``img`` (any Pillow mode) as an 8-bit RGB image; a mode that has no faithful conversion is a FakeChainError."""
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return img
    if mode in SIXTEEN_BIT:
        import numpy as np

        grey = np.asarray(img).astype(np.uint32)  # any byte order
        return Image.fromarray(((grey * 255 + 32767) // 65535).astype(np.uint8), "L").convert("RGB")
    if mode not in EIGHT_BIT:
        raise _unsupported(mode)
    if "A" in img.getbands() or img.info.get("transparency") is not None:
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def load_rgb(source, limits: ImageLimits = DEFAULT_LIMITS, *, shown: str | None = None):
    """The image at ``source`` (a path, or the bytes of an image file) decoded within ``limits``, as 8-bit RGB."""
    with open_image(source, limits, shown=shown) as img:
        rgb = to_rgb(img)
        return rgb.copy() if rgb is img else rgb


def check_image(root: Path, relative: str, limits: ImageLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """Check that the image exists inside ``root``, is within the limits, decodes and is 8 bits per channel in a mode
    training reads as it is; return (width, height).

    A 16-bit image is refused here, though :func:`to_rgb` converts it: the processors that train on a dataset read it
    clipped to white, and a bit depth that only one class has is a shortcut a detector learns instead of the traces.
    """
    path = resolve_inside(root, relative)
    if not path.is_file():
        raise FakeChainError(f"image file not found: {relative}", field="image")
    with open_image(path, limits, shown=relative) as img:
        if img.mode in SIXTEEN_BIT:
            raise FakeChainError(
                f"image is 16-bit greyscale (mode {img.mode}): a dataset image must have 8 bits per channel (training "
                "reads a 16-bit one clipped to white); convert the dataset's images to 8 bits, all the same way",
                field="image",
            )
        if img.mode not in EIGHT_BIT:
            raise _unsupported(img.mode)
        return img.size


def open_image(source, limits: ImageLimits = DEFAULT_LIMITS, *, shown: str | None = None):
    """Open and fully decode ``source`` (a path, or the bytes of an image file) within ``limits``; the caller closes
    the image (it is a context manager).

    ``shown`` is how the path appears in error messages (a dataset-relative path rather than an absolute one).
    """
    import io

    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        size, shown, path = len(source), shown or "(image bytes)", io.BytesIO(source)
    else:
        path = Path(source)
        shown = shown or str(path)
        try:
            size = path.stat().st_size
        except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
            raise FakeChainError(
                f"cannot read image {shown}: {getattr(err, 'strerror', None) or err}", field="image"
            ) from err
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
