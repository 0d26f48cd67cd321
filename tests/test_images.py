"""The one image loader (fakeinstruct.images): every mode Pillow gives becomes 8-bit RGB correctly, or is refused with
one clear line; a dataset image must have 8 bits per channel. Used by validate, generate, draft and detect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_records, write_dataset
from PIL import Image

from fakeinstruct.cli import main
from fakeinstruct.errors import FakeChainError
from fakeinstruct.images import check_image, load_rgb, to_rgb

# a 64x64 16-bit ramp over the whole range, and what 8 bits make of it
RAMP16 = (np.arange(64 * 64, dtype=np.uint32) * 65535 // (64 * 64 - 1)).astype(np.uint16).reshape(64, 64)
RAMP8 = ((RAMP16.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
GREY = np.repeat(RAMP8[..., None], 3, axis=-1)


def _save(tmp_path, name, img, **kwargs):
    path = tmp_path / name
    img.save(path, **kwargs)
    return path


def _transparent_left_half(mode: str) -> Image.Image:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:, 32:, 3] = 255  # the left half fully transparent
    return Image.fromarray(rgba, "RGBA").convert(mode)


def test_16_bit_greyscale_png_and_tiff_are_scaled_not_clipped(tmp_path):
    for name in ("ramp.png", "ramp.tif"):
        path = _save(tmp_path, name, Image.fromarray(RAMP16))
        with Image.open(path) as img:
            assert img.mode.startswith("I;16")
        rgb = load_rgb(path)
        assert rgb.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(rgb), GREY)  # Pillow's own convert("RGB") makes it white


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
def test_transparency_is_composited_on_white_as_transformers_does(mode, tmp_path):
    img = _transparent_left_half(mode)
    # PNG cannot hold PA: that one is converted in memory, as a PIL image handed to the detector is
    rgb = np.asarray(to_rgb(img) if mode == "PA" else load_rgb(_save(tmp_path, "alpha.png", img)))
    assert (rgb[:, :32] == 255).all()
    expected = np.asarray(Image.new("RGBA", (1, 1), (10, 20, 30, 255)).convert(mode).convert("RGB"))[0, 0]
    assert (rgb[:, 32:] == expected).all()


def test_a_palette_with_a_transparent_entry_is_composited_on_white(tmp_path):
    palette = Image.new("P", (64, 64), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.paste(0, (0, 0, 32, 64))
    path = _save(tmp_path, "palette.png", palette, transparency=0)
    rgb = np.asarray(load_rgb(path))
    assert (rgb[:, :32] == 255).all() and (rgb[:, 32:] == (200, 100, 50)).all()


@pytest.mark.parametrize(
    ("name", "img", "pixel"),
    [
        ("bilevel.png", Image.new("1", (64, 64), 1), (255, 255, 255)),
        ("grey.png", Image.new("L", (64, 64), 77), (77, 77, 77)),
        ("cmyk.jpg", Image.new("CMYK", (64, 64), (0, 255, 0, 0)), (255, 0, 255)),
        ("cmyk.tif", Image.new("CMYK", (64, 64), (0, 255, 0, 0)), (255, 0, 255)),
    ],
)
def test_eight_bit_modes_convert_as_pillow_does(name, img, pixel, tmp_path):
    rgb = np.asarray(load_rgb(_save(tmp_path, name, img)))
    assert rgb.shape == (64, 64, 3) and tuple(rgb[10, 10]) == pixel


@pytest.mark.parametrize(
    ("name", "img", "message"),
    [
        (
            "float.tif",
            Image.fromarray(RAMP16.astype(np.float32)),
            "image mode F (32-bit float pixels, of no known range)",
        ),
        (
            "int.tif",
            Image.fromarray(RAMP16.astype(np.int32)),
            "image mode I (32-bit integer pixels, of no known range)",
        ),
        ("lab.tif", Image.new("LAB", (64, 64)), "image mode LAB (CIELab colour, which needs colour management"),
    ],
)
def test_modes_without_a_faithful_conversion_are_refused_in_one_line(name, img, message, tmp_path):
    path = _save(tmp_path, name, img)
    with pytest.raises(FakeChainError) as info:
        load_rgb(path)
    assert str(info.value).startswith(f"image: {message}") and "\n" not in str(info.value)
    with pytest.raises(FakeChainError, match="is not supported: save it as 8-bit RGB"):
        check_image(tmp_path, name)


def test_a_dataset_refuses_16_bit_images_in_validate_and_generate(tmp_path, capsys):
    from conftest import generate_with_one_template

    records = make_records(3)
    path = write_dataset(tmp_path / "data", records)
    Image.fromarray(RAMP16).save(tmp_path / "data" / records[1]["image"])
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{path}:2: image: image is 16-bit greyscale (mode I;16): a dataset image must have 8 bits per channel "
        "(training reads a 16-bit one clipped to white); convert the dataset's images to 8 bits, all the same way"
    ]
    result = generate_with_one_template(path, tmp_path)
    assert (result.records, result.rejected) == (2, 1)


def test_draft_refuses_a_16_bit_image_as_validate_would(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    Image.fromarray(RAMP16).save(root / "images" / "deep.png")
    source = {"generator": "camera", "family": "real-camera", "origin": "test", "license": "CC0-1.0"}
    manifest = root / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "r-1", "image": "images/deep.png", "label": "real", "source": source}))
    out = tmp_path / "drafts.jsonl"
    assert main(["-q", "draft", str(root), "--manifest", str(manifest), "--out", str(out), "--no_progress"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {manifest}:1: image: image is 16-bit greyscale (mode I;16): a dataset image must have 8 bits per "
        "channel (training reads a 16-bit one clipped to white); convert the dataset's images to 8 bits, all the same way"
    ]
    assert not out.exists()


def test_detect_and_the_measurements_read_a_16_bit_png_as_its_8_bit_values(tmp_path):
    from fakeinstruct.drafting.measure import decode_rgb
    from modeling.detector import load_rgb as detector_rgb

    path = _save(tmp_path, "ramp.png", Image.fromarray(RAMP16))
    np.testing.assert_array_equal(np.asarray(detector_rgb(path)), GREY)
    with Image.open(path) as img:
        np.testing.assert_array_equal(np.asarray(detector_rgb(img)), GREY)
    np.testing.assert_array_equal(decode_rgb(path), GREY)


def test_embedded_image_bytes_are_opened_within_the_limits():
    data = (Path(__file__).parent / "data" / "bad" / "bomb.png").read_bytes()
    with pytest.raises(FakeChainError, match="image does not decode: Image size"):
        load_rgb(data, shown="embedded")
