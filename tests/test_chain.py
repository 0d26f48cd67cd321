import copy
import json

import pytest
from pydantic import ValidationError

from fakeinstruct.chain import FakeChain, json_schema
from fakeinstruct.chain.taxonomy import default_taxonomy, load_taxonomy
from fakeinstruct.templating.probes import PROBES


def probe(i=0, **changes):
    rec = copy.deepcopy(PROBES[i])
    rec.update(changes)
    return rec


def errors_of(record):
    with pytest.raises(ValidationError) as info:
        FakeChain.model_validate(record)
    return info.value.errors()


def test_probe_records_are_valid():
    for rec in PROBES:
        chain = FakeChain.model_validate(rec)
        assert chain.id == rec["id"]
        assert chain.group == chain.image  # no source.group: the image is its own group


@pytest.mark.parametrize(
    ("changes", "loc", "needle"),
    [
        ({"label": "maybe"}, ("label",), "real"),
        ({"image": "/etc/passwd"}, ("image",), "relative"),
        ({"image": "images/../../x.png"}, ("image",), "'..'"),
        ({"image": "C:/x.png"}, ("image",), "relative"),
        ({"id": "has space"}, ("id",), "must match"),
        ({"reasoning": []}, ("reasoning",), "at least 1"),
        ({"conclusion": "   "}, ("conclusion",), "at least 1"),
        ({"schema_version": "0.9"}, ("schema_version",), "1.0"),
        ({"extra": 1}, ("extra",), "not permitted"),
    ],
)
def test_invalid_fields_name_the_field(changes, loc, needle):
    errors = errors_of(probe(**changes))
    assert any(e["loc"] == loc and needle in e["msg"] for e in errors), errors


def test_unknown_attribute_lists_known_names():
    rec = probe()
    rec["attributes"][0]["name"] = "vibes"
    (error,) = errors_of(rec)
    assert error["loc"] == ("attributes", 0, "name")
    assert "unknown attribute 'vibes'" in error["msg"] and "texture" in error["msg"]


def test_duplicate_attribute_and_bad_region_and_severity():
    rec = probe()
    rec["attributes"].append(copy.deepcopy(rec["attributes"][0]))
    assert "more than once" in errors_of(rec)[0]["msg"]
    rec = probe()
    rec["attributes"][0]["region"] = [10, 10, 5, 20]
    assert errors_of(rec)[0]["loc"] == ("attributes", 0, "region")
    rec = probe()
    rec["attributes"][0]["severity"] = 1.5
    assert errors_of(rec)[0]["loc"] == ("attributes", 0, "severity")


def test_fake_needs_anomalous_evidence_and_matching_family():
    rec = probe()
    for a in rec["attributes"]:
        a["verdict"] = "natural"
    assert "at least one attribute" in errors_of(rec)[0]["msg"]
    rec = probe(2)
    rec["source"] = dict(rec["source"], family="diffusion")
    assert "disagrees" in errors_of(rec)[0]["msg"]


def test_image_placeholder_in_text_is_rejected():
    rec = probe()
    rec["attributes"][1]["evidence"] = "Look at <image> here."
    (error,) = errors_of(rec)
    assert error["loc"] == ("attributes", 1, "evidence") and "<image>" in error["msg"]
    rec = probe()
    rec["reasoning"][2] = "<image>"
    assert errors_of(rec)[0]["loc"] == ("reasoning", 2)


def test_taxonomy_extension(tmp_path):
    rec = probe()
    rec["attributes"][0]["name"] = "watermark"
    errors_of(rec)
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "attributes:\n  - {name: watermark, title: watermark, description: d, natural: n, anomalous: a, advice: f}\n"
    )
    taxonomy = load_taxonomy(extra)
    assert "watermark" in taxonomy and len(taxonomy) == len(default_taxonomy()) + 1
    FakeChain.model_validate(rec, context={"taxonomy": taxonomy})


def test_taxonomy_extension_cannot_redefine(tmp_path):
    from fakeinstruct.errors import TaxonomyError

    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "attributes:\n  - {name: texture, title: t, description: d, natural: n, anomalous: a, advice: f}\n"
    )
    with pytest.raises(TaxonomyError, match="already defined"):
        load_taxonomy(extra)


def test_taxonomy_has_required_attributes():
    names = set(default_taxonomy().names)
    required = {"texture", "edges", "clarity", "lighting", "color", "layout", "symmetry", "reflection", "perspective"}
    required |= {"shape", "text", "content_consistency", "distortion", "implausibility"}
    assert required <= names


def test_json_schema_exports_and_describes_fields():
    schema = json_schema()
    json.dumps(schema)
    assert schema["properties"]["label"]["$ref"].endswith("Label")
    assert set(schema["required"]) >= {"schema_version", "id", "image", "label", "attributes", "reasoning"}
    assert "relative" in schema["properties"]["image"]["description"]
