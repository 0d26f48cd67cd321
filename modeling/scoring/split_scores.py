"""Raw token-probability scores for every image of a split, batch by batch, resumable through a cache."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from modeling.scoring.cache import ResultCache
from modeling.scoring.split_images import LabeledImage

logger = logging.getLogger(__name__)


@dataclass
class SplitScores:
    """Parallel arrays over the images of a split."""

    chain_id: list[str]
    generator: list[str]
    group: list[str]
    label: np.ndarray
    logit: np.ndarray
    p_raw: np.ndarray


def weights_fingerprint(folder: str | Path | None) -> str | None:
    """Names, sizes and modification times of the weight files: enough to tell a retrained checkpoint apart."""
    if folder is None:
        return None
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(folder).glob("*.safetensors"))]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def score_split(detector, items: list[LabeledImage], cache_path: str | Path | None = None, progress: bool = True):
    """Score ``items`` with ``detector``'s detection question; cached results are reused, new ones appended."""
    from tqdm.auto import tqdm

    header = {
        "weights": weights_fingerprint(detector.source),
        "question": asdict(detector.config.detection),
        "formula": detector.estimator.formula,
    }
    cache = ResultCache(cache_path, header, key_field="chain_id")
    todo = [item for item in items if item.chain_id not in cache]
    if len(todo) < len(items):
        logger.info("%d of %d images already scored in %s", len(items) - len(todo), len(items), cache_path)
    size = detector.batch_size
    with tqdm(total=len(todo), desc="scoring", unit="img", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), size):
            batch = todo[start : start + size]
            scores = detector.estimator.score([item.open() for item in batch], detector.config.detection)
            cache.add(
                {"chain_id": item.chain_id, "logit": float(z), "p_raw": float(p)}
                for item, z, p in zip(batch, scores.logit, scores.p, strict=True)
            )
            bar.update(len(batch))
    rows = [cache[item.chain_id] for item in items]
    return SplitScores(
        chain_id=[item.chain_id for item in items],
        generator=[item.generator for item in items],
        group=[item.group for item in items],
        label=np.asarray([item.label for item in items], dtype=np.int64),
        logit=np.asarray([row["logit"] for row in rows], dtype=np.float64),
        p_raw=np.asarray([row["p_raw"] for row in rows], dtype=np.float64),
    )
