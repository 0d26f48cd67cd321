"""What a template sees: the render context built from one FakeChain record.

The names here are the whole vocabulary of a template; the registry rejects any other name at load time.
"""

from __future__ import annotations

from typing import Any

from fakeinstruct.chain.taxonomy import Taxonomy
from fakeinstruct.chain.verdict import evidence_label
from fakeinstruct.templating.engine import with_globals
from fakeinstruct.templating.kinds import KIND_VARIABLES

# Variables every template may use, whatever its family.
RECORD_FIELDS = {
    "label": "'real' or 'fake'",
    "is_fake": "true when the label is 'fake'",
    "generator": "generator name ('camera' for real photos)",
    "generator_family": "generator family, e.g. 'gan', 'diffusion', 'real-camera'",
    "attributes": "every annotated attribute (list of attribute objects, see below)",
    "anomalous": "the attributes whose verdict is 'anomalous'",
    "natural": "the attributes whose verdict is 'natural'",
    "reasoning": "the reasoning steps (list of strings), in order",
    "conclusion": "the conclusion paragraph",
    "advice": "enhancement advice: the record's own, else derived from its anomalous attributes; empty for real images",
    "evidence_points_to": "'fake' or 'real': where the verdicts point by the fixed rule (fakeinstruct.chain.verdict); "
    "word evidence by it, not by the label",
    "inconclusive": "true when the verdicts do not point to the label: the label then comes from the source alone, and "
    "an answer must not argue it from the evidence",
}
# Variables that only some template kinds get.
KIND_FIELDS = {
    "attribute": "the attribute under discussion (attribute templates of kind per_attribute and attribute_closed)",
    "answer": "the correct answer word (closed and choice kinds; answers must start with it)",
    "options": "the shuffled options of a choice question: list of {letter, text}",
}
assert set(KIND_FIELDS) == set().union(*KIND_VARIABLES.values())
ATTRIBUTE_KEYS = (
    "name",
    "title",
    "verdict",
    "is_anomalous",
    "evidence",
    "measurement",
    "severity",
    "region",
    "description",
    "looks_natural",
    "looks_anomalous",
    "fix",
)


def attribute_context(attribute: dict, taxonomy: Taxonomy) -> dict[str, Any]:
    """What a template sees of one attribute of a record (``attribute`` as in the record's JSON)."""
    spec = taxonomy[attribute["name"]]
    region = attribute.get("region")
    return {
        "name": attribute["name"],
        "title": spec.title,
        "verdict": attribute["verdict"],
        "is_anomalous": attribute["verdict"] == "anomalous",
        "evidence": attribute["evidence"],
        "measurement": attribute.get("measurement"),
        "severity": attribute.get("severity"),
        "region": list(region) if region else None,
        "description": spec.description,
        "looks_natural": spec.natural,
        "looks_anomalous": spec.anomalous,
        "fix": spec.advice,
    }


def record_context(record: dict, taxonomy: Taxonomy) -> dict[str, Any]:
    """The context shared by every template rendered for ``record`` (a validated record's JSON)."""
    attributes = [attribute_context(a, taxonomy) for a in record["attributes"]]
    anomalous = [a for a in attributes if a["is_anomalous"]]
    is_fake = record["label"] == "fake"
    if record.get("enhancement"):
        advice = list(record["enhancement"])
    elif is_fake:
        advice = [a["fix"] for a in anomalous]
    else:
        advice = []
    source = record["source"]
    points_to = evidence_label(record["attributes"])
    return with_globals(
        {
            "label": record["label"],
            "is_fake": is_fake,
            "generator": source["generator"],
            "generator_family": source["family"],
            "attributes": attributes,
            "anomalous": anomalous,
            "natural": [a for a in attributes if not a["is_anomalous"]],
            "reasoning": list(record["reasoning"]),
            "conclusion": record["conclusion"],
            "advice": advice,
            "evidence_points_to": points_to,
            "inconclusive": points_to != record["label"],
        }
    )
