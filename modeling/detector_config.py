"""What the detector asks: the detection question, the explanation request and one question per attribute.

The questions come from FakeInstruct's own templates (first phrasing of each), so the detector asks what the
model was trained on, with the same answer words. They are saved beside the checkpoint as
``detector_config.json``: a published model keeps the prompts it was calibrated with even if the templates change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modeling.scoring.probability import ClosedQuestion

CONFIG_NAME = "detector_config.json"
DETECTION_TEMPLATE = "detection.real_or_fake"
EXPLANATION_TEMPLATE = "explanation.verdict_with_reasoning"
ATTRIBUTE_TEMPLATE = "attribute.looks_natural"


@dataclass
class DetectorConfig:
    """The detector's prompts and decision threshold (on the calibrated p_fake when a head is present)."""

    detection: ClosedQuestion
    explanation: str
    attributes: dict[str, ClosedQuestion] = field(default_factory=dict)
    threshold: float = 0.5
    max_new_tokens: int = 128
    # how the answer words' tokens are scored (modeling.scoring.probability.SCORE_FORMULAS); the calibration head
    # is fitted on this formula's logits, so it is saved with it
    score_formula: str = "logprob"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = CONFIG_NAME) -> DetectorConfig:
        try:
            return cls(
                detection=ClosedQuestion(**data["detection"]),
                explanation=str(data["explanation"]),
                attributes={k: ClosedQuestion(**v) for k, v in data.get("attributes", {}).items()},
                threshold=float(data.get("threshold", 0.5)),
                max_new_tokens=int(data.get("max_new_tokens", 128)),
                score_formula=str(data.get("score_formula", "logprob")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{source}: not a valid detector config: {type(err).__name__}: {err}") from err

    def save(self, folder: str | Path) -> Path:
        from fakeinstruct.files import write_text

        path = Path(folder) / CONFIG_NAME
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> DetectorConfig:
        """The config saved in ``folder``, else the one built from the installed templates."""
        path = Path(folder) / CONFIG_NAME
        if not path.is_file():
            return default_config()
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))


def default_config() -> DetectorConfig:
    """Prompts from the built-in templates: their first phrasing and their answer words."""
    from fakeinstruct.chain.taxonomy import load_taxonomy
    from fakeinstruct.templating.engine import render, with_globals
    from fakeinstruct.templating.registry import load_registry
    from fakeinstruct.templating.variables import attribute_context

    registry, taxonomy = load_registry(entry_points=False), load_taxonomy()
    detection = registry[DETECTION_TEMPLATE]
    words = detection.answer_words
    explanation = registry[EXPLANATION_TEMPLATE].questions[0]
    attribute = registry[ATTRIBUTE_TEMPLATE]
    attribute_words = attribute.answer_words
    questions = {}
    for spec in taxonomy:
        # A neutral attribute: questions are rendered before the answer and must not depend on the verdict.
        context = {"attribute": _neutral_attribute(spec.name, taxonomy, attribute_context)}
        phrasing = attribute.questions_by_attribute.get(spec.name, ()) + attribute.questions
        text = phrasing[0].static or render(
            phrasing[0].compiled, with_globals(context), file=attribute.file, field="questions[0]"
        )
        questions[spec.name] = ClosedQuestion(text, attribute_words["anomalous"], attribute_words["natural"])
    return DetectorConfig(
        detection=ClosedQuestion(detection.questions[0].static, words["fake"], words["real"]),
        explanation=explanation.static,
        attributes=questions,
    )


def _neutral_attribute(name: str, taxonomy, attribute_context) -> dict:
    return attribute_context({"name": name, "verdict": "natural", "evidence": ""}, taxonomy)
