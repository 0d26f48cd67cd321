"""The dataset card (``README.md``) written next to generated FakeInstruct shards."""

from __future__ import annotations

import yaml

_IMAGES_RELATIVE = """\
Images are stored **once**, under `images/`, and every row's `images` column (and `image_path`) holds paths
relative to this folder (`images/...`). A row never embeds image bytes: with several pairs per image, embedding
would multiply the dataset's size by the pairs per image. Load with the resolver, which turns the paths into PIL
images:

```python
from fakeinstruct.loading import load_fakeinstruct
ds = load_fakeinstruct("path/to/this/folder")  # DatasetDict; ds["train"][0]["images"][0] is a PIL image
```

TRL's own `trl sft` trains on this folder as it is when run from inside it, where the paths resolve
(`cd path/to/this/folder && trl sft --dataset_name "$PWD" ...`). Published to the Hub (`scripts/push_to_hub.py
--dataset_dir ... --dataset_repo_id ...`), the shards are written again with the image bytes embedded, so that
`load_dataset(repo)` and `trl sft --dataset_name repo` need nothing else."""

_IMAGES_EMBED = """\
Image bytes are embedded in every row's `images` column, declared as a list of `datasets.Image`, so
`datasets.load_dataset` and TRL's `trl sft` get PIL images directly. Rows of one image repeat its bytes (the price
of a self-contained, TRL-native dataset).

```python
from datasets import load_dataset
ds = load_dataset("{where}")  # ds["train"][0]["images"][0] is a PIL image
```

```sh
trl sft --model_name_or_path llava-hf/llava-1.5-7b-hf --dataset_name {where} --assistant_only_loss true ...
```"""


def _table(counts: dict[str, int], header: str) -> str:
    lines = [f"| {header} | pairs |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    return "\n".join(lines)


def _quality(stats: dict) -> str:
    quality = stats.get("quality")
    if not quality:
        return "Run `fakeinstruct stats <folder>` for the data-quality report (balance, diversity, leakage)."
    t, checks = quality["thresholds"], quality["checks"]
    answers = quality["diversity"]["answers"]
    questions = quality["diversity"]["questions"]
    explanation = quality["answer_words_length"].get("explanation", {})
    rows = [
        (
            "answer-word balance",
            f"{quality['balance']}",
            f"every share within 0.5 +- {t['balance_tolerance']}",
            checks["balance"],
        ),
        ("answers distinct-2", answers["distinct_2"], f">= {t['min_distinct_2_answers']}", checks["distinct_2"]),
        ("answers distinct-4", answers["distinct_4"], f">= {t['min_distinct_4_answers']}", checks["distinct_4"]),
        (
            "answers sharing an 8-gram with > 1% of answers",
            quality["diversity"]["repetitive_answers"],
            f"<= {t['max_repetitive_answers']}",
            checks["repetition"],
        ),
        (
            "median explanation length (words)",
            explanation.get("p50"),
            f">= {t['min_median_explanation_words']}",
            checks["explanation_length"],
        ),
        ("exact duplicates left", quality["exact_duplicates_left"], "0", checks["no_duplicates"]),
        ("images or groups in two splits", quality["leakage"], "none", checks["no_leakage"]),
    ]
    lines = ["| check | value | threshold | pass |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {limit} | {'yes' if ok else 'NO'} |" for name, value, limit, ok in rows]
    lines.append("")
    lines.append(
        f"Questions: distinct-2 {questions['distinct_2']}, distinct-4 {questions['distinct_4']}. Diversity is measured "
        f"on an evenly spread sample of {quality['sampled_turns']} turns; everything else on all pairs. "
        "Answer length percentiles per family are in `stats.json`; the distributions are drawn in `stats.png`."
    )
    return "\n".join(lines)


def render_dataset_card(config: dict, stats: dict) -> str:
    ext = config["file_format"]
    front = {
        "license": "other",
        "license_name": "per-image",
        "license_details": "Each image keeps its own license, recorded per FakeChain record in source.license.",
        "task_categories": ["image-text-to-text", "visual-question-answering"],
        "language": ["en"],
        "tags": ["ai-generated-image-detection", "image-forensics", "fakeinstruct", "fakechain"],
        "pretty_name": "FakeInstruct",
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": f"{split}/*.{ext}"} for split, n in stats["per_split"].items() if n
                ],
            }
        ],
    }
    records = stats["records"]
    where = config.get("repo_id") or "path/to/this/folder"  # a repo id, never the path it was generated at
    images = _IMAGES_EMBED.format(where=where) if config["images"] == "embed" else _IMAGES_RELATIVE
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# FakeInstruct

Visual instruction pairs for explainable AI-generated-image detection, expanded from FakeChain records
(per-image authenticity reasoning chains: a real/fake label, visual-trace evidence per forgery attribute,
reasoning steps and a conclusion) by `fakeinstruct generate` {config["fakeinstruct_version"]}.

- **Pairs:** {stats["pairs"]} from {records["valid"]} records ({records["rejected"]} rejected by validation,
  {stats["duplicates_removed"]} exact duplicates removed{_failures(stats)})
- **Format:** `{config["format"]}`, {ext} shards under `train/`, `validation/`, `test/`
- **Seed:** {config["seed"]}; **template set:** `{config["templates"]}` ({len(config["template_names"])} templates);
  **FakeChain schema:** {config["schema_version"]}; **chains file sha256:** `{config["chains_sha256"][:16]}...`

## Task families

{_table(stats["per_task"], "family")}

Closed-ended answers start with the answer word (`answer_word`); `positive_word` / `negative_word` give the
words for fake/anomalous and real/natural, the two alternatives a token-probability score compares.

Closed-ended answer words per family: `{stats["closed_answer_words"]}`.

## Data quality

{_quality(stats)}

## Splits

{_table(stats["per_split"], "split")}

Records per split: {records["per_split"]}. {_splits_text(config, records)}

## Annotation

{_annotation(records)}

## Labels and generators

{_table(stats["per_label"], "label")}

{_table(stats["per_generator"], "generator")}

## Columns

`id`, `task`, `template_id` (`<template>#q<question>a<answer>`), `chain_id`, `image_path` (the image, relative to this folder), `group` (the split
group: records sharing it are in one split), `label`, `generator`,
`attribute` (attribute pairs), `positive_word`, `negative_word`, `answer_word` (closed-ended pairs), and the
conversation in the `{config["format"]}` layout.

## Images

{images}

## Reproduce

The full generation config is in `fakeinstruct_config.json` beside this card; the same config, chains file and
template set give byte-identical shards, whatever the number of workers.

## Licensing

The images keep their own licenses; see each record's `source.license` in the FakeChain file. The text was
generated from FakeChain annotations by templates distributed under the toolkit's license.
"""


def _splits_text(config: dict, records: dict) -> str:
    field = config.get("split_from")
    if not field:
        return (
            "Splits are grouped: records that share an image or a source group\n(`source.group`, e.g. crops of one "
            "photograph) are always in the same split, so nothing leaks between splits."
        )
    shared = records.get("dataset_split", {}).get("records_sharing_a_group_across_splits", 0)
    return (
        f"Splits are the dataset's own, read from `{field}`: its test (and validation) records stay there, and its "
        "train records were dealt to train and validation in groups (records that share an image or a source "
        f"group stay together). {shared} records share an image or source group with a record that the dataset "
        "put in another split."
    )


def review_lines(records: dict) -> list[str]:
    """How the records were annotated, in words (folders written before these were counted have none)."""
    lines = []
    blind, decides = records.get("blind_review"), records.get("evidence_decides_label")
    if blind and blind["records"]:
        agreement = "n/a" if blind["agreement"] is None else f"{blind['agreement']:.1%}"
        lines.append(
            f"blind review: {blind['records']} records; the reviewer's own call agrees with the label on "
            f"{blind['agree_with_label']} of {blind['records'] - blind['unsure']} ({agreement}), "
            f"{blind['unsure']} unsure"
        )
    if decides and decides["true"] + decides["false"]:
        lines.append(
            f"evidence decides the label: {decides['true']} of {decides['true'] + decides['false']} records "
            f"({decides['share']:.1%}); {decides['unstated']} do not say"
        )
    advice = records.get("enhancement")
    if advice and advice["fakes"]:
        lines.append(
            f"enhancement advice: {advice['own_advice']} of {advice['fakes']} fakes have their own, "
            f"{advice['taxonomy_fallback']} get the taxonomy's generic advice for their anomalous attributes, "
            f"{advice.get('no_advice', 0)} have nothing anomalous to fix"
        )
    return lines


def _annotation(records: dict) -> str:
    lines = review_lines(records)
    if not lines:
        return "The records do not say how they were reviewed (no blind-review or evidence fields)."
    text = "\n".join(f"- {line[0].upper()}{line[1:]}." for line in lines)
    return (
        text + "\n\nThe label comes from provenance, never from the annotation. A record whose verdicts do not point"
        " to its label (by the fixed rule of `fakeinstruct.chain.verdict`) says so in its conclusion."
    )


def _failures(stats: dict) -> str:
    failed = stats.get("template_failures", {}).get("pairs", 0)
    if not failed:
        return ""
    return f", {failed} left out because their template failed on their record: see `template_failures` in stats.json"
