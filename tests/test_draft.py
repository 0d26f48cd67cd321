"""Machine drafting: measurements on synthetic images with known answers, drafted records, the manifest run."""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from pydantic import ValidationError

from fakeinstruct.chain import FakeChain
from fakeinstruct.cli.draft import add_commands
from fakeinstruct.drafting.draft import DEFAULT_THRESHOLDS, DRAFTED_BY, Limit, draft_manifest, draft_record
from fakeinstruct.drafting.measure import MAX_SIDE, measure_array, measure_image
from fakeinstruct.errors import FakeChainError

REAL_SOURCE = {"generator": "camera", "family": "real-camera", "origin": "synthetic test", "license": "CC0-1.0"}
FAKE_SOURCE = {
    "generator": "test-upscaler",
    "family": "gan-super-resolution",
    "origin": "synthetic",
    "license": "CC0-1.0",
}


def _u8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def _gray(values: np.ndarray) -> np.ndarray:
    return np.repeat(_u8(values)[..., None], 3, axis=2)


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as img:
        return np.asarray(img.convert("RGB"))


def _scene(side: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth colour fields plus one patch with crisp contours: content without any grain."""
    coarse = np.random.default_rng(seed).uniform(60, 190, size=(8, 8, 3)).astype(np.uint8)
    scene = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)).astype(float)
    scene[side // 4 : side // 2, side // 3 : 2 * side // 3] = (200, 80, 60)
    return scene


def _camera_like(seed: int = 1) -> np.ndarray:
    """Sensor-like grain, then a camera JPEG on the frame's own 8x8 grid."""
    grain = np.random.default_rng(seed).normal(0, 3, (128, 128, 3))
    return _jpeg(_u8(_scene() + grain), 85)


def _upscaler_like() -> np.ndarray:
    """A 32x32 version blown up 4x: no grain, no JPEG grid, a 4-pixel interpolation lattice."""
    small = Image.fromarray(_u8(_scene())).resize((32, 32), Image.Resampling.LANCZOS)
    return np.asarray(small.resize((128, 128), Image.Resampling.BICUBIC))


def _save(pixels: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


# Measurements with known answers.


def test_flat_gray_has_no_trace_at_all():
    m = measure_array(np.full((128, 128, 3), 128, np.uint8))
    assert m.noise_std < 1e-6
    assert m.hf_share == 0.0
    assert m.grid_ratio == pytest.approx(1.0)
    assert m.lattice_ratio == pytest.approx(1.0)
    assert (m.halo, m.edge_count) == (0.0, 0)
    assert m.detail_ratio == 0.0
    assert (m.saturation_mean, m.oversaturated_share, m.tonal_gap_share) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("sigma", "tolerance"), [(1.0, 0.1), (3.0, 0.05), (8.0, 0.05)])
def test_noise_std_reads_the_added_gaussian_sigma(sigma, tolerance):
    # At sigma 1 the 8-bit rounding (std 0.29) adds a few percent on top.
    noise = np.random.default_rng(5).normal(0, sigma, (128, 128))
    assert measure_array(_gray(128 + noise)).noise_std == pytest.approx(sigma, rel=tolerance)


def test_noise_is_measured_in_flat_areas_not_on_content():
    # Independent grain per channel: luma averages it down to sigma * |luma weights|.
    luma_gain = float(np.linalg.norm([0.299, 0.587, 0.114]))
    grain = np.random.default_rng(6).normal(0, 2, (128, 128, 3))
    assert measure_array(_u8(_scene() + grain)).noise_std == pytest.approx(2 * luma_gain, rel=0.1)
    assert measure_array(_u8(_scene())).noise_std < 0.3


def test_white_noise_puts_three_quarters_of_its_power_above_a_quarter_cycle():
    # Flat spectrum: the share is the annulus 0.25..0.5 over the disc of radius 0.5, i.e. 0.75.
    noise = np.random.default_rng(7).normal(0, 20, (128, 128))
    assert measure_array(_gray(128 + noise)).hf_share == pytest.approx(0.75, abs=0.05)
    assert measure_array(_u8(_scene())).hf_share < 0.01


def test_jpeg_q70_shows_an_aligned_grid_the_png_does_not():
    noisy = _u8(_scene() + np.random.default_rng(1).normal(0, 3, (128, 128, 3)))
    png, jpeg = measure_array(noisy), measure_array(_jpeg(noisy, 70))
    assert png.grid_ratio < 1.06
    assert jpeg.grid_ratio > 1.25
    assert jpeg.grid_aligned
    assert (jpeg.grid_phase_x, jpeg.grid_phase_y) == (0, 0)


def test_cropping_a_jpeg_moves_the_grid_phase():
    jpeg = _jpeg(_u8(_scene() + np.random.default_rng(1).normal(0, 3, (128, 128, 3))), 70)
    m = measure_array(jpeg[5:, 3:])  # the block boundary before column 8 is now before column 5
    assert m.grid_ratio > 1.25
    assert (m.grid_phase_x, m.grid_phase_y) == (5, 3)
    assert not m.grid_aligned


def test_nearest_4x_upsampling_stamps_a_lattice_not_a_jpeg_grid():
    small = Image.fromarray(_u8(_scene() + np.random.default_rng(2).normal(0, 8, (128, 128, 3)))).resize((32, 32))
    m = measure_array(np.asarray(small.resize((128, 128), Image.Resampling.NEAREST)))
    assert m.lattice_ratio > 2.0
    assert m.grid_ratio < 1.06


def _step_edges() -> Image.Image:
    step = np.full((128, 128), 60.0)
    step[:, 64:] = 190
    step[40:90, 20:40] = 190
    return Image.fromarray(_gray(step)).filter(ImageFilter.GaussianBlur(1.5))


def test_blur_then_sharpen_draws_a_halo():
    blurred = _step_edges()
    sharpened = blurred.filter(ImageFilter.UnsharpMask(radius=2, percent=250, threshold=0))
    soft, hard = measure_array(np.asarray(blurred)), measure_array(np.asarray(sharpened))
    assert soft.edge_count > 100 and hard.edge_count > 100
    assert soft.halo < 0.02
    assert hard.halo > 0.25


def test_dark_line_beside_an_edge_is_not_a_halo():
    # A cable along a boundary dips below the dark plateau on one side only; a halo rims both sides.
    pixels = np.full((128, 128), 90.0)
    pixels[:, 64:] = 200
    pixels[:, 60:62] = 30
    m = measure_array(np.asarray(Image.fromarray(_gray(pixels)).filter(ImageFilter.GaussianBlur(0.7))))
    assert m.edge_count > 50
    assert m.halo == 0.0


def test_smeared_detail_between_crisp_contours_lowers_the_detail_ratio():
    grain = np.random.default_rng(3).normal(0, 4, (128, 128, 3))
    detailed, smeared = measure_array(_u8(_scene() + grain)), measure_array(_u8(_scene()))
    assert detailed.detail_ratio > 0.2
    assert smeared.detail_ratio < 0.06


def test_posterised_gradient_skips_levels():
    ramp = np.repeat(np.linspace(40, 200, 128)[None, :], 128, axis=0) + np.random.default_rng(4).normal(
        0, 1, (128, 128)
    )
    assert measure_array(_gray(ramp)).tonal_gap_share < 0.05
    assert measure_array(_gray(np.round(ramp / 4) * 4)).tonal_gap_share > 0.6


def test_saturation():
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 220
    m = measure_array(red)
    assert (m.saturation_mean, m.oversaturated_share) == (pytest.approx(1.0), 1.0)
    assert measure_array(np.full((64, 64, 3), 90, np.uint8)).oversaturated_share == 0.0


def test_large_image_is_cropped_on_the_8x8_grid(tmp_path):
    big = _u8(_scene(side=1000)[:700] + np.random.default_rng(0).normal(0, 3, (700, 1000, 3)))
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=80)
    m = measure_image(path)
    assert (m.width, m.height) == (MAX_SIDE, MAX_SIDE)
    assert m.grid_ratio > 1.25 and m.grid_aligned


def test_any_mode_is_converted_to_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(_u8(np.full((64, 64), 100))).convert("LA").save(path)
    assert measure_image(path).saturation_mean == 0.0
    with pytest.raises(ValueError, match="smaller than"):
        measure_array(np.zeros((8, 64, 3), np.uint8))


def test_measuring_is_fast():
    pixels = _camera_like()
    measure_array(pixels)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        measure_array(pixels)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05


# Drafted records.


def _draft(pixels: np.ndarray, tmp_path: Path, label: str, source: dict, name: str = "img.png"):
    path = _save(pixels, tmp_path / "images" / name)
    return draft_record(path, record_id=f"{label}-1", image_rel=f"images/{name}", label=label, source=source)


def _verdicts(record: dict) -> dict[str, str]:
    return {a["name"]: a["verdict"] for a in record["attributes"]}


def test_camera_like_image_drafts_a_valid_real_record(tmp_path):
    result = _draft(_camera_like(), tmp_path, "real", REAL_SOURCE)
    chain = FakeChain.model_validate(result.record)
    assert result.needs_review == [] and not result.contradicts_label
    assert _verdicts(result.record) == dict.fromkeys(
        ("texture", "edges", "clarity", "noise", "compression", "color"), "natural"
    )
    compression = next(a for a in chain.attributes if a.name == "compression")
    assert "aligned with the frame" in compression.evidence
    assert f"grid ratio {result.measurements.grid_ratio:.2f}" in compression.evidence
    assert chain.conclusion.startswith("The image is a real photograph")
    assert chain.provenance.annotation == "machine"
    assert chain.provenance.drafted_by == DRAFTED_BY
    assert chain.provenance.machine_fields == ["attributes", "reasoning", "conclusion", "enhancement"]


def test_upscaler_like_image_drafts_a_valid_fake_record(tmp_path):
    result = _draft(_upscaler_like(), tmp_path, "fake", FAKE_SOURCE)
    chain = FakeChain.model_validate(result.record)
    assert result.needs_review == [] and not result.contradicts_label
    verdicts = _verdicts(result.record)
    assert {name for name, v in verdicts.items() if v == "anomalous"} >= {"noise", "texture"}
    noise = next(a for a in chain.attributes if a.name == "noise")
    assert f"residual std {result.measurements.noise_std:.1f} grey levels" in noise.evidence
    assert 0.05 <= noise.severity <= 1.0
    # located, and advice that is this image's own: its region and its measured value, strongest trace first
    x0, y0, x1, y1 = noise.region
    assert (
        0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128 and (x1 - x0, y1 - y0) in ((42, 42), (42, 43), (43, 42), (43, 43))
    )
    advice = next(a for a in chain.enhancement if "sensor grain" in a)
    assert (
        f"around x {x0}-{x1}, y {y0}-{y1}" in advice and f"{result.measurements.noise_std:.1f} grey levels" in advice
    )
    anomalous = sorted((a for a in chain.attributes if a.verdict == "anomalous"), key=lambda a: -a.severity)
    assert len(chain.enhancement) == len(anomalous)
    assert all(a.severity is None for a in chain.attributes if a.verdict == "natural")
    assert chain.conclusion.startswith("The image is fake")


def test_verdicts_do_not_depend_on_the_label(tmp_path):
    pixels = _upscaler_like()
    as_fake = _draft(pixels, tmp_path, "fake", FAKE_SOURCE).record
    as_real = _draft(pixels, tmp_path, "real", REAL_SOURCE).record
    assert as_fake["attributes"] == as_real["attributes"]
    assert as_fake["conclusion"] != as_real["conclusion"]
    assert as_fake["enhancement"] and as_real["enhancement"] == []  # advice on passing as real is for fakes


def test_fake_label_without_evidence_is_flagged_not_invented(tmp_path):
    result = _draft(_camera_like(), tmp_path, "fake", FAKE_SOURCE)
    assert result.contradicts_label
    assert set(_verdicts(result.record).values()) == {"natural"}
    assert result.needs_review[0].startswith("contradiction: labelled fake, but the verdicts point to real")
    # valid, because it says what it is: its evidence does not decide its label, and its conclusion is inconclusive
    assert result.record["provenance"]["evidence_decides_label"] is False
    assert result.record["conclusion"].startswith("The evidence is inconclusive")
    FakeChain.model_validate(result.record)
    claiming = json.loads(json.dumps(result.record))
    claiming["provenance"]["evidence_decides_label"] = True
    with pytest.raises(ValidationError, match="verdicts point to 'real' and the label is 'fake'"):
        FakeChain.model_validate(claiming)
    del claiming["provenance"]["evidence_decides_label"]
    with pytest.raises(ValidationError, match="at least one attribute with verdict 'anomalous'"):
        FakeChain.model_validate(claiming)


def test_real_label_with_mostly_anomalous_evidence_is_flagged(tmp_path):
    result = _draft(_upscaler_like(), tmp_path, "real", REAL_SOURCE)
    FakeChain.model_validate(result.record)
    assert result.contradicts_label
    assert result.needs_review[0].startswith("contradiction: labelled real")
    assert "would not clear it" in result.record["conclusion"]


def test_thresholds_drive_the_verdicts(tmp_path):
    pixels = _camera_like()
    path = _save(pixels, tmp_path / "a.png")
    strict = type(DEFAULT_THRESHOLDS)(noise_std=Limit(50.0, 0.0))
    result = draft_record(path, record_id="a", image_rel="a.png", label="real", source=REAL_SOURCE, thresholds=strict)
    noise = next(a for a in result.record["attributes"] if a["name"] == "noise")
    assert noise["verdict"] == "anomalous"
    assert noise["severity"] == pytest.approx((50.0 - result.measurements.noise_std) / 50.0, abs=0.01)


def test_limit_severity():
    low_is_anomalous, high_is_anomalous = Limit(0.5, 0.2), Limit(0.2, 0.8)
    assert low_is_anomalous.passed(0.4) and not low_is_anomalous.passed(0.6)
    assert high_is_anomalous.passed(0.5) and not high_is_anomalous.passed(0.1)
    assert low_is_anomalous.severity(0.35) == pytest.approx(0.5)
    assert high_is_anomalous.severity(5.0) == 1.0
    assert high_is_anomalous.severity(0.2001) == 0.05
    with pytest.raises(ValueError):
        Limit(1.0, 1.0)


def test_drafting_is_deterministic(tmp_path):
    first = _draft(_upscaler_like(), tmp_path, "fake", FAKE_SOURCE, "x.png")
    second = _draft(_upscaler_like(), tmp_path, "fake", FAKE_SOURCE, "x.png")
    assert json.dumps(first.record) == json.dumps(second.record)


# The manifest run.


def _manifest(root: Path, entries: list[tuple[str, np.ndarray | None, str]]) -> Path:
    lines = []
    for record_id, pixels, label in entries:
        image = f"images/{record_id}.png"
        if pixels is not None:
            _save(pixels, root / image)
        source = REAL_SOURCE if label == "real" else FAKE_SOURCE
        lines.append(json.dumps({"id": record_id, "image": image, "label": label, "source": source}))
    path = root / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_draft_manifest_writes_records_in_order_for_any_worker_count(tmp_path):
    entries = [("r1", _camera_like(1), "real"), ("f1", _upscaler_like(), "fake"), ("r2", _camera_like(2), "fake")]
    manifest = _manifest(tmp_path, entries)
    one = draft_manifest(tmp_path, manifest, tmp_path / "out" / "one.jsonl", workers=1, progress=False)
    two = draft_manifest(tmp_path, manifest, tmp_path / "out" / "two.jsonl", workers=2, progress=False)
    text = (tmp_path / "out" / "one.jsonl").read_text(encoding="utf-8")
    assert text == (tmp_path / "out" / "two.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["id"] for r in records] == ["r1", "f1", "r2"]
    assert all(r["provenance"]["label_source"] == "manifest manifest.jsonl" for r in records)
    # r2 is a camera-like image labelled fake: written, flagged, listed in the review file.
    assert (one.records, one.valid, one.needs_review, one.contradictions) == (3, 3, 1, ["r2"])
    assert one.anomalous == two.anomalous
    review = [json.loads(line) for line in one.review.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["line"]) for r in review] == [("r2", 3)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "one.jsonl",
        "one.review.jsonl",
        "two.jsonl",
        "two.review.jsonl",
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_draft_manifest_leaves_no_partial_file_on_error(tmp_path, workers):
    manifest = _manifest(
        tmp_path, [("r1", _camera_like(1), "real"), ("f1", _upscaler_like(), "fake"), ("bad", None, "fake")]
    )
    (tmp_path / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out" / "drafts.jsonl"
    out.parent.mkdir()
    out.write_text("earlier run\n", encoding="utf-8")
    with pytest.raises(FakeChainError) as err:
        draft_manifest(tmp_path, manifest, out, workers=workers, progress=False)
    assert (err.value.line, err.value.field) == (3, "image")
    assert out.read_text(encoding="utf-8") == "earlier run\n"
    assert [p.name for p in out.parent.iterdir()] == ["drafts.jsonl"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "image": "images/missing.png", "label": "real", "source": SOURCE}', "image file not found"),
        ('{"id": "x", "image": "../outside.png", "label": "real", "source": SOURCE}', "outside the dataset root"),
        ('{"id": "x", "image": "images/r1.png", "label": "maybe", "source": SOURCE}', "label must be"),
        ('{"id": "r1", "image": "images/r1.png", "label": "real", "source": SOURCE}', "already used on line 1"),
        (
            '{"id": "x", "image": "images/r1.png", "label": "real", "source": {"generator": "camera"}}',
            "Field required",
        ),
        ('{"id": "x", "image": "images/r1.png"}', "missing key(s): label, source"),
        ("not json", "invalid JSON"),
    ],
)
def test_bad_manifest_lines_fail_before_any_drafting(tmp_path, line, message):
    manifest = _manifest(tmp_path, [("r1", _camera_like(1), "real")])
    with manifest.open("a", encoding="utf-8") as handle:
        handle.write(line.replace("SOURCE", json.dumps(REAL_SOURCE)) + "\n")
    with pytest.raises(FakeChainError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        draft_manifest(tmp_path, manifest, tmp_path / "drafts.jsonl", progress=False)
    assert err.value.line == 2
    assert not (tmp_path / "drafts.jsonl").exists()


def test_cli_subcommand(tmp_path, capsys):
    manifest = _manifest(tmp_path, [("r1", _camera_like(1), "real")])
    parser = argparse.ArgumentParser(prog="fakeinstruct")
    add_commands(parser.add_subparsers(dest="command"))
    out = tmp_path / "drafts.jsonl"
    args = parser.parse_args(["draft", str(tmp_path), "--manifest", str(manifest), "--out", str(out), "--no-progress"])
    assert args.func(args) == 0
    FakeChain.model_validate(json.loads(out.read_text(encoding="utf-8")))
    assert "1 drafts" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["draft", "--help"])
    assert "--workers" in capsys.readouterr().out
