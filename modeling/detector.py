"""``FakeScopeDetector``: a fine-tuned checkpoint as a calibrated, explaining real/fake detector.

    detector = FakeScopeDetector.from_pretrained("outputs/demo/sft")   # or a Hub repo id
    detector("photo.jpg")
    # {"image": "photo.jpg", "label": "fake", "p_fake": 0.93, "p_fake_raw": 0.97, "explanation": "..."}

``p_fake_raw`` is the token-probability estimate (:mod:`modeling.scoring.probability`); ``p_fake`` passes its logit through
the checkpoint's calibration head when there is one (else it equals the raw value and ``calibrated`` is False).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from modeling.calibration import CalibrationHead
from modeling.detector_config import DetectorConfig, default_config
from modeling.safe_loading import load_model_and_processor, resolve_checkpoint_dir
from modeling.scoring.generation import generate_answers
from modeling.scoring.probability import TokenProbabilityEstimator, prompt_text

logger = logging.getLogger(__name__)
ON_ERROR = ("raise", "report")


def load_rgb(image):
    """An 8-bit RGB PIL image from a path or a PIL image of any mode (:func:`fakeinstruct.images.to_rgb`: 16-bit scaled,
    transparency on white); paths are opened within the dataset image limits."""
    from PIL import Image

    from fakeinstruct.images import load_rgb as load_path
    from fakeinstruct.images import to_rgb

    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, (str, Path)):
        return load_path(image)
    raise TypeError(f"expected a path or a PIL image, got {type(image).__name__}")


class FakeScopeDetector:
    """Scores images with a model, its processor, the detector prompts and an optional calibration head."""

    def __init__(
        self,
        model,
        processor,
        config: DetectorConfig | None = None,
        calibration: CalibrationHead | None = None,
        batch_size: int = 16,
        source: str | Path | None = None,
    ):
        self.model, self.processor = model, processor
        self.source = source  # the folder the checkpoint was loaded from, if any
        self.config = config or default_config()
        self.calibration = calibration
        self.estimator = TokenProbabilityEstimator(
            model, processor, batch_size=batch_size, formula=self.config.score_formula
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        revision: str | None = None,
        token: str | None = None,
        device: str | None = None,
        dtype=None,
        attn_implementation: str = "sdpa",
        batch_size: int = 16,
        warn_uncalibrated: bool = True,
    ) -> FakeScopeDetector:
        """Load a checkpoint folder or Hub repo: model, processor, ``detector_config.json``, ``calibration/``.

        A checkpoint without a head logs a warning (p_fake is then the raw probability) unless
        ``warn_uncalibrated=False``: calibration itself loads checkpoints that have none yet.
        """
        folder = resolve_checkpoint_dir(name_or_path, revision=revision, token=token)
        model, processor = load_model_and_processor(
            folder, dtype=dtype, device=device, attn_implementation=attn_implementation
        )
        calibration = CalibrationHead.from_checkpoint(folder)
        if calibration is None and warn_uncalibrated:
            logger.warning("%s has no calibration head: p_fake is the raw token probability", name_or_path)
        return cls(model, processor, DetectorConfig.load(folder), calibration, batch_size, source=folder)

    @property
    def batch_size(self) -> int:
        return self.estimator.batch_size

    def __call__(
        self,
        images,
        *,
        explain: bool = True,
        attributes: bool = False,
        on_error: str = "raise",
        progress: bool | None = None,
    ):
        """One result dict per image (a single dict for a single image).

        ``on_error="report"`` turns an unreadable image into ``{"image": ..., "error": ...}`` and scores the rest.
        """
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        results, loaded, where = [], [], []
        for item in items:
            name = str(item) if isinstance(item, (str, Path)) else None
            try:
                loaded.append(load_rgb(item))
            except Exception as err:
                if on_error == "raise":
                    raise
                results.append({"image": name, "error": str(err)})
                continue
            where.append(len(results))
            results.append({"image": name})
        progress = len(loaded) > 4 * self.batch_size if progress is None else progress
        for slot, scored in zip(
            where, self.detect(loaded, explain=explain, attributes=attributes, progress=progress), strict=True
        ):
            results[slot].update(scored)
        return results[0] if single else results

    def detect(self, images: Sequence, *, explain: bool = True, attributes: bool = False, progress: bool = False):
        """Results for PIL images (no ``image`` key): label, p_fake, p_fake_raw, logit and the optional parts."""
        scores = self.estimator.score(images, self.config.detection, progress=progress)
        results = self.verdicts(scores.logit, scores.p)
        if attributes:
            for result, per_image in zip(results, self.attribute_scores(images, progress=progress), strict=True):
                result["attributes"] = per_image
        if explain:
            for result, text in zip(results, self.explain(images, progress=progress), strict=True):
                result["explanation"] = text
        return results

    def verdicts(self, logit, p_raw) -> list[dict]:
        """Label, p_fake, p_fake_raw, logit and calibrated per image from the detection question's scores (shared by
        every way of scoring, so that they agree image by image)."""
        p_fake = self.calibration.calibrate(logit) if self.calibration is not None else p_raw
        return [
            {
                "label": "fake" if p >= self.config.threshold else "real",
                "p_fake": float(p),
                "p_fake_raw": float(raw),
                "logit": float(z),
                "calibrated": self.calibration is not None,
            }
            for p, raw, z in zip(p_fake, p_raw, logit, strict=True)
        ]

    def attribute_scores(self, images: Sequence, progress: bool = False) -> list[dict[str, float]]:
        """p(anomalous) per taxonomy attribute, from the closed-ended attribute questions."""
        per_image: list[dict[str, float]] = [{} for _ in images]
        for name, question in self.config.attributes.items():
            for out, p in zip(per_image, self.estimator.score(images, question, progress=progress).p, strict=True):
                out[name] = float(p)
        return per_image

    def explain(self, images: Sequence, progress: bool = False) -> list[str]:
        """Greedy explanations to the explanation question, ``batch_size`` images per ``generate`` call."""
        prompt = prompt_text(self.processor, self.config.explanation)
        return generate_answers(self.estimator, images, [prompt] * len(images), self.config.max_new_tokens, progress)
