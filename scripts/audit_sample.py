#!/usr/bin/env python
"""Does the sample's annotation text give its label away? Bag-of-words vs. measurements, grouped by author.

    python scripts/audit_sample.py [--chains fakeinstruct/data/sample/chains.jsonl]

Three logistic regressions predict the label, each scored by ROC AUC under cross-validation that keeps each split
group (``source.group``: the photograph's author) in one fold:

- ``natural_wording``: the words of the evidence of attributes judged *natural*. Blind review should leave them
  describing what is visible, so they should not predict the label much better than the pixels do.
- ``all_wording``: the words of all evidence (anomalous verdicts included).
- ``measurements``: the nine image measurements the evaluation's measurement baseline uses, the pixel-level yardstick.

The last line printed is a JSON object with the three AUCs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "fakeinstruct" / "data" / "sample"


@dataclass
class Arguments:
    chains: str = field(default=str(SAMPLE / "chains.jsonl"), metadata={"help": "FakeChain JSONL file"})
    folds: int = field(default=5, metadata={"help": "cross-validation folds (grouped by source.group)"})


def grouped_auc(x, y: np.ndarray, groups: list[str], folds: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        model = make_pipeline(StandardScaler(with_mean=not hasattr(x, "tocsr")), LogisticRegression(max_iter=2000))
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return round(float(roc_auc_score(y, scores)), 3)


def main() -> None:
    from PIL import Image
    from sklearn.feature_extraction.text import CountVectorizer

    from fakeinstruct.arguments import HelpFormatter, add_dataclass_arguments, dataclass_from_args
    from modeling.evaluation.baselines import measurement_features

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    add_dataclass_arguments(parser, Arguments)
    args = dataclass_from_args(Arguments, parser.parse_args())
    chains = Path(args.chains)
    records = [json.loads(line) for line in chains.read_text(encoding="utf-8").splitlines() if line.strip()]
    y = np.array([r["label"] == "fake" for r in records], dtype=int)
    groups = [r["source"].get("group") or r["image"] for r in records]

    def words(record: dict, natural_only: bool) -> str:
        return " ".join(a["evidence"] for a in record["attributes"] if a["verdict"] == "natural" or not natural_only)

    result = {}
    for name, natural_only in (("natural_wording", True), ("all_wording", False)):
        x = CountVectorizer(binary=True, min_df=2).fit_transform([words(r, natural_only) for r in records])
        result[name] = grouped_auc(x, y, groups, args.folds)
    x = np.array([measurement_features(Image.open(chains.parent / r["image"])) for r in records])
    result["measurements"] = grouped_auc(x, y, groups, args.folds)
    for name, auc in result.items():
        print(f"{name:<16} AUC {auc:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
