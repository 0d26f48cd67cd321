"""What the validation pass hands the plan, and what the plan hands each shard: records by place, not content."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fakeinstruct.folder import IMAGES_DIR, shard_name


@dataclass(slots=True)
class RecordRef:
    """Where a valid record is in the chains file, and what the plan needs to know about it.

    ``canonical`` is false when the line's JSON differs from the validated record's (whitespace the schema strips):
    such a record is validated again when its shard is rendered; every other one is only parsed.
    """

    line: int
    offset: int
    length: int
    id: str
    image: str
    group: str
    pairs: int
    canonical: bool
    # for the record-level report: the label, the blind reviewer's call, whether the evidence decides the label,
    # and where a fake's enhancement advice comes from: "own", "taxonomy" (derived from its anomalous attributes) or
    # "none" (nothing anomalous to fix)
    label: str
    call: str | None
    decided: bool | None
    advice: str
    # the dataset's own split (train, validation or test), read from GenerateConfig.split_from; None without it
    own_split: str | None = None


@dataclass
class ShardSpec:
    split: str
    index: int
    # (offset, length, line, canonical) of each record in the chains file, in order
    records: list[tuple[int, int, int, bool]] = field(default_factory=list)
    planned_pairs: int = 0
    # what every image path starts with; in the output, images/ replaces it (see plan.image_prefix)
    image_prefix: str = ""

    def output_image(self, image: str) -> str:
        """Where a record's image goes in the output folder, relative to it."""
        return f"{IMAGES_DIR}/{image[len(self.image_prefix) :]}"

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index)


@dataclass
class Plan:
    shards: list[ShardSpec]
    records: int
    records_per_split: dict[str, int]
    planned_pairs: int
    image_prefix: str = ""
    review: dict = field(default_factory=dict)  # see plan.review_summary


def review_summary(refs: list[RecordRef]) -> dict:
    """What the records say of their annotation: blind agreement with the label, how many have evidence that
    decides their label, and how many fakes bring their own enhancement advice (the rest get the taxonomy's)."""
    calls = [r for r in refs if r.call is not None]
    sure = [r for r in calls if r.call != "unsure"]
    agree = sum(r.call == r.label for r in sure)
    decided = [r.decided for r in refs if r.decided is not None]
    fakes = Counter(r.advice for r in refs if r.label == "fake")
    return {
        "blind_review": {
            "records": len(calls),
            "unsure": len(calls) - len(sure),
            "agree_with_label": agree,
            "agreement": round(agree / len(sure), 4) if sure else None,
        },
        "evidence_decides_label": {
            "true": sum(decided),
            "false": len(decided) - sum(decided),
            "unstated": len(refs) - len(decided),
            "share": round(sum(decided) / len(decided), 4) if decided else None,
        },
        "enhancement": {
            "fakes": fakes.total(),
            "own_advice": fakes["own"],
            "taxonomy_fallback": fakes["taxonomy"],
            "no_advice": fakes["none"],
        },
    }
