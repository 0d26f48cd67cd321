"""The bundled sample: valid, consistent with its image manifest, and good enough to pass its own report."""

import hashlib
import json

import pytest
from conftest import SAMPLE

from fakeinstruct.chain.validate import validate_chains
from fakeinstruct.generation import GenerateConfig, generate
from fakeinstruct.report.quality import measure


def records():
    return [json.loads(line) for line in (SAMPLE / "chains.jsonl").read_text().splitlines()]


def test_every_record_is_valid(tmp_path):
    report = validate_chains(SAMPLE / "chains.jsonl", quarantine=tmp_path / "q.jsonl")
    assert (report.valid, report.rejected) == (192, 0)


def test_records_match_the_image_manifest():
    manifest = {m["id"]: m for m in map(json.loads, (SAMPLE / "manifest.jsonl").read_text().splitlines())}
    chains = records()
    assert [r["id"] for r in chains] == sorted(manifest)
    for record in chains:
        image = manifest[record["id"]]
        assert record["label"] == image["label"] and record["image"] == image["file"]
        assert record["source"]["generator"] == image["generator"]
        assert record["source"]["group"] == image["source_author"] and record["source"]["license"] == image["license"]
        assert hashlib.sha256((SAMPLE / record["image"]).read_bytes()).hexdigest() == image["sha256"]
    assert sum(r["label"] == "fake" for r in chains) == 96


def test_provenance_says_who_wrote_what():
    for record in records():
        provenance = record["provenance"]
        assert provenance["drafted_by"].startswith("fakeinstruct draft")
        assert provenance["reviewed_by"].startswith("blind reviewer B") and provenance["blind"] is True
        assert provenance["reviewer_call"] in ("real", "fake", "unsure")
        assert "reasoning" in provenance["reviewed_fields"]
        assert record["reasoning"][0].startswith("The image shows ")
        # the label comes from the generation pipeline, never from the review
        assert provenance["label_source"].startswith("generation pipeline")


def test_sample_is_laundered_alike():
    """Both classes went through the same resize and JPEG, and no file format or size tells them apart."""
    from PIL import Image

    manifest = [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text().splitlines()]
    for label in ("real", "fake"):
        images = [m for m in manifest if m["label"] == label]
        assert all(m["laundering"]["resize"] == [112, 112] for m in images)
        qualities = [m["laundering"]["jpeg_quality"] for m in images]
        assert 80 <= sum(qualities) / len(qualities) <= 86
        for m in images[:8]:
            with Image.open(SAMPLE / m["file"]) as img:
                assert (img.format, img.size, img.mode) == ("JPEG", (112, 112), "RGB") and not img.getexif()


def test_sample_records_were_rebuilt_from_the_blind_decisions(tmp_path):
    """scripts/build_sample.py, run again from the manifest, the images and the bundled decisions, writes exactly
    the bundled records: every record comes from the blind review flow."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "sample"
    shutil.copytree(SAMPLE, copy)
    (copy / "chains.jsonl").unlink()
    script = SAMPLE.parents[2] / "scripts" / "build_sample.py"
    subprocess.run([sys.executable, str(script), "--sample", str(copy)], check=True, capture_output=True)
    assert (copy / "chains.jsonl").read_text() == (SAMPLE / "chains.jsonl").read_text()


@pytest.fixture(scope="module")
def sample_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "out"
    generate(GenerateConfig(chains=str(SAMPLE / "chains.jsonl"), out=str(out), workers=2, progress=False))
    return out


def test_splits_group_by_source_photo(sample_output):
    stats = json.loads((sample_output / "stats.json").read_text())
    assert stats["records"]["per_split"]["test"] >= 10 and stats["records"]["per_split"]["validation"] >= 10
    report = measure(sample_output)
    assert report["leakage"] == {"images_in_several_splits": 0, "groups_in_several_splits": 0}


def test_sample_passes_its_own_quality_thresholds(sample_output):
    report = measure(sample_output)
    failed = [name for name, ok in report["checks"].items() if not ok]
    assert not failed, {"failed": failed, "diversity": report["diversity"], "balance": report["balance"]}
