"""What the detector asks: the detection question, the explanation request and one question per attribute.

The questions come from FakeInstruct's own templates (first phrasing of each), so the detector asks what the
model was trained on, with the same answer words. They are saved beside the checkpoint as
``detector_config.json``: a published model keeps the prompts it was calibrated with even if the templates change.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modeling.scoring.probability import SCORE_FORMULAS, ClosedQuestion

CONFIG_NAME = "detector_config.json"
DETECTION_TEMPLATE = "detection.real_or_fake"
EXPLANATION_TEMPLATE = "explanation.verdict_with_reasoning"
ATTRIBUTE_TEMPLATE = "attribute.looks_natural"
MAX_NEW_TOKENS = 4096  # an explanation is a paragraph


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where} must be a non-empty string")
    return value


def _question(value, where: str) -> ClosedQuestion:
    if not isinstance(value, dict) or set(value) != {"question", "positive", "negative"}:
        raise ValueError(f"{where} must be an object with exactly question, positive and negative")
    question = ClosedQuestion(*(_text(value[k], f"{where}.{k}") for k in ("question", "positive", "negative")))
    if question.positive.strip() == question.negative.strip():
        raise ValueError(f"{where}: positive and negative are the same word")
    return question


def _number(value, where: str, low, high, kind):
    """A JSON number strictly between ``low`` and ``high`` (a float threshold) or within them (an int count)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ValueError(f"{where} must be a {'whole ' if kind is int else ''}number, not {value!r}")
    if kind is float:
        if not (math.isfinite(value) and low < value < high):
            raise ValueError(f"{where} must be a finite number between {low} and {high} (exclusive), not {value!r}")
    elif not low <= value <= high:
        raise ValueError(f"{where} must be between {low} and {high}, not {value!r}")
    return kind(value)


def _formula(value) -> str:
    if value not in SCORE_FORMULAS:
        raise ValueError(f"score_formula must be one of {', '.join(SCORE_FORMULAS)}, not {value!r}")
    return value


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
        """The config of ``data``, checked: a checkpoint's config is someone else's file, and a NaN threshold (every
        image real), a string where a question belongs or a huge generation length must not get past loading."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: not a valid detector config: expected a JSON object")
        try:
            attributes = data.get("attributes", {})
            if not isinstance(attributes, dict):
                raise ValueError("attributes must be an object of questions")
            return cls(
                detection=_question(data["detection"], "detection"),
                explanation=_text(data["explanation"], "explanation"),
                attributes={str(k): _question(v, f"attributes.{k}") for k, v in attributes.items()},
                threshold=_number(data.get("threshold", 0.5), "threshold", 0.0, 1.0, float),
                max_new_tokens=_number(data.get("max_new_tokens", 128), "max_new_tokens", 1, MAX_NEW_TOKENS, int),
                score_formula=_formula(data.get("score_formula", "logprob")),
            )
        except KeyError as err:
            raise ValueError(f"{source}: not a valid detector config: {err.args[0]} is missing") from None
        except ValueError as err:
            raise ValueError(f"{source}: not a valid detector config: {err}") from None

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
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, str(path))


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
