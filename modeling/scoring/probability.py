"""Token-probability estimation: a score from a model trained only on hard "Real"/"Fake" answers.

For a closed-ended question the answer starts with one of two words (FakeInstruct's closed templates guarantee it).
Teacher-forced at the answer position, the model gives each word a log-probability ``s`` (summed over the word's
tokens when it takes several); ``p = exp(s_pos) / (exp(s_pos) + exp(s_neg))`` is a two-way softmax and
``z = s_pos - s_neg`` its logit. Nothing is generated: one forward pass per batch.

Which tokens a word becomes depends on the chat template: LLaVA-1.5 renders ``"ASSISTANT:"`` then ``" Fake"``
(the word with a leading space), the tiny model renders ``"<|assistant|>\\n"`` then ``"Fake"``. :func:`answer_plan`
reads the variant off the template itself, by rendering a conversation whose answer is the word.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from modeling.scoring.chat_template import assistant_turn, render_chat, user_turn

# Processor outputs that are not per-row tensors of the text: everything else is repeated with its row.
TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


class ScoringError(ValueError):
    """The model, processor or question cannot be scored as asked."""


@dataclass(frozen=True)
class ClosedQuestion:
    """A question whose answer starts with ``positive`` (fake / anomalous) or ``negative`` (real / natural)."""

    question: str
    positive: str
    negative: str


@dataclass(frozen=True)
class AnswerPlan:
    """How the two answers continue a prompt, in tokens.

    ``drop`` prompt tokens are removed from the end before a continuation is appended: non-zero only when the
    tokenizer merges the end of the prompt with the word (then the continuation re-tokenises that text).
    """

    drop: int
    positive: tuple[int, ...]
    negative: tuple[int, ...]

    @property
    def single_position(self) -> bool:
        """Both words are one token right after the prompt: both read off the last position's logits."""
        return self.drop == 0 and len(self.positive) == 1 and len(self.negative) == 1


@dataclass(frozen=True)
class Scores:
    """Per image: ``logit`` = s_pos - s_neg, ``p`` = sigmoid(logit), and the two summed log-probabilities."""

    logit: np.ndarray
    p: np.ndarray
    positive_logprob: np.ndarray
    negative_logprob: np.ndarray


def prompt_text(processor, question: str) -> str:
    """The rendered prompt up to and including the assistant prefix, as training rendered it."""
    return conversation_prompt(processor, user_turn(question))


def conversation_prompt(processor, messages: list[dict]) -> str:
    """``messages`` (ending with a user turn) rendered with the generation prompt."""
    return render_chat(processor, messages, add_generation_prompt=True)


def _answer_text(processor, question: str, prompt: str, word: str) -> str:
    """What follows ``prompt`` up to the end of ``word`` when the assistant answers with ``word``."""
    full = render_chat(processor, [*user_turn(question), assistant_turn(word)])
    if not full.startswith(prompt):
        raise ScoringError(
            "the chat template renders the generation prompt differently from the start of an assistant turn; "
            f"cannot locate the answer. prompt ends {prompt[-40:]!r}, conversation has {full[len(prompt) - 40 :]!r}"
        )
    rest = full[len(prompt) :]
    start = rest.find(word)
    if start < 0 or rest[:start].strip():
        raise ScoringError(f"the chat template does not start the answer with {word!r}: {rest[:60]!r}")
    return rest[: start + len(word)]


def _tokens(tokenizer, text: str) -> list[int]:
    # The chat template writes BOS itself; adding special tokens here would shift every position (as in training).
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def answer_plan(processor, question: str, positive: str, negative: str) -> AnswerPlan:
    """Token continuations of the two answer words after the prompt of ``question``."""
    tokenizer = getattr(processor, "tokenizer", processor)
    prompt = prompt_text(processor, question)
    prompt_ids = _tokens(tokenizer, prompt)
    fulls = [_tokens(tokenizer, prompt + _answer_text(processor, question, prompt, w)) for w in (positive, negative)]
    # Where each full sequence leaves the prompt's tokens; both continuations start from the earlier point.
    keep = len(prompt_ids)
    for ids in fulls:
        shared = 0
        for a, b in zip(prompt_ids, ids, strict=False):
            if a != b:
                break
            shared += 1
        keep = min(keep, shared)
    pos, neg = (tuple(ids[keep:]) for ids in fulls)
    if not pos or not neg:
        raise ScoringError(f"answer words {positive!r}/{negative!r} add no token after the prompt")
    if pos == neg:
        raise ScoringError(f"answer words {positive!r} and {negative!r} tokenise identically")
    return AnswerPlan(drop=len(prompt_ids) - keep, positive=pos, negative=neg)


@cache
def _accepts_logits_to_keep(model_class: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


# How a word's tokens become its score ``s``: "logprob" sums their log-probabilities (a proper two-way posterior);
# "fakescope" sums their raw logits, as the FakeScope paper defines it. For one-token words the two give the same p
# (log-softmax subtracts one constant per position); for longer words they differ.
SCORE_FORMULAS = ("logprob", "fakescope")


def require_finite(logit: np.ndarray) -> np.ndarray:
    """``logit``, or a :class:`ScoringError`: a NaN score would pass for a verdict (NaN >= t is False: "real")."""
    broken = int((~np.isfinite(logit)).sum())
    if broken:
        raise ScoringError(
            f"the model gave non-finite log-probabilities for {broken} of {len(logit)} image(s): its weights hold "
            "NaN or infinite values, or its dtype overflows"
        )
    return logit


class TokenProbabilityEstimator:
    """Scores images against closed-ended questions with any image-text-to-text model and its processor."""

    def __init__(self, model, processor, batch_size: int = 16, formula: str = "logprob"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if formula not in SCORE_FORMULAS:
            raise ValueError(f"score formula must be one of {', '.join(SCORE_FORMULAS)}, got {formula!r}")
        self.model, self.processor, self.batch_size, self.formula = model, processor, batch_size, formula
        self._plans: dict[tuple[str, str, str], AnswerPlan] = {}

    def plan(self, question: ClosedQuestion) -> AnswerPlan:
        key = (question.question, question.positive, question.negative)
        if key not in self._plans:
            self._plans[key] = answer_plan(self.processor, *key)
        return self._plans[key]

    @torch.inference_mode()
    def score(
        self, images: Sequence, questions: ClosedQuestion | Sequence[ClosedQuestion], progress: bool = False
    ) -> Scores:
        """Score every image (PIL, RGB) against ``questions`` (one for all, or one per image).

        Rows are grouped by answer plan (the same words after the same prompt tail) and scored ``batch_size`` at
        a time, one forward pass per batch; results come back in the input order.
        """
        from tqdm.auto import tqdm

        if isinstance(questions, ClosedQuestion):
            questions = [questions] * len(images)
        if len(questions) != len(images):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        groups: dict[AnswerPlan, list[int]] = {}
        for i, question in enumerate(questions):
            groups.setdefault(self.plan(question), []).append(i)
        pos, neg = np.zeros(len(images)), np.zeros(len(images))
        batches = [
            (plan, rows[s : s + self.batch_size])
            for plan, rows in groups.items()
            for s in range(0, len(rows), self.batch_size)
        ]
        # the chat template renders each distinct question once, not once per image
        prompt_of = {q: prompt_text(self.processor, q) for q in {q.question for q in questions}}
        for plan, rows in tqdm(batches, desc="scoring", unit="batch", disable=not progress or len(batches) < 2):
            prompts = [prompt_of[questions[i].question] for i in rows]
            pos[rows], neg[rows] = self._score_batch([images[i] for i in rows], prompts, plan)
        logit = require_finite(pos - neg)
        return Scores(logit=logit, p=_sigmoid(logit), positive_logprob=pos, negative_logprob=neg)

    def encode(self, images: list, prompts: list[str]) -> dict:
        """Processor inputs for one batch, left-padded, rendered as in training (BOS from the template)."""
        return self.processor(
            images=images,
            text=prompts,
            padding=True,
            padding_side="left",
            return_tensors="pt",
            add_special_tokens=False,
        )

    def _score_batch(self, images: list, prompts: list[str], plan: AnswerPlan) -> tuple[np.ndarray, np.ndarray]:
        return self.score_inputs(self.encode(images, prompts), plan)

    @torch.inference_mode()
    def score_inputs(self, inputs, plan: AnswerPlan) -> tuple[np.ndarray, np.ndarray]:
        """The two summed log-probabilities per row of ready model inputs (:meth:`encode`'s, or a data loader's
        equal ones): the one forward pass that every way of scoring shares."""
        n = len(inputs["input_ids"])
        if plan.single_position:
            logprobs = self._last_logprobs(inputs, keep=1)[:, -1]
            return (logprobs[:, plan.positive[0]].numpy(), logprobs[:, plan.negative[0]].numpy())
        # Two rows per image: the prompt followed by each continuation, right-aligned so both end at the last
        # position; the last ``k + 1`` positions hold every logit the longer continuation needs.
        continuations = (plan.positive, plan.negative)
        rows = []
        for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True):
            prompt_ids = ids[mask.bool()].tolist()
            prompt_ids = prompt_ids[: len(prompt_ids) - plan.drop]
            rows += [prompt_ids + list(cont) for cont in continuations]
        pad = self.processor.tokenizer.pad_token_id
        width = max(map(len, rows))
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        doubled = {k: v.repeat_interleave(2, dim=0) for k, v in inputs.items() if k not in TEXT_KEYS}
        doubled.update(input_ids=input_ids, attention_mask=attention_mask)
        keep = max(map(len, continuations)) + 1
        logprobs = self._last_logprobs(doubled, keep)
        sums = []
        for row, cont in enumerate(continuations * n):
            first = keep - 1 - len(cont)  # kept position that predicts the continuation's first token
            steps = logprobs[row, first : first + len(cont)]
            sums.append(steps.gather(-1, torch.tensor(cont).unsqueeze(-1)).sum().item())
        sums = np.asarray(sums, dtype=np.float64).reshape(n, 2)
        return sums[:, 0], sums[:, 1]

    def _last_logprobs(self, inputs: dict, keep: int) -> torch.Tensor:
        """Log-softmax over the vocabulary at the last ``keep`` positions (raw logits with the "fakescope" formula),
        in float32 whatever the model dtype."""
        model = self.model
        device, dtype = model.device, model.dtype
        batch = {k: v.to(device) for k, v in inputs.items()}
        for key, value in batch.items():
            if value.is_floating_point():
                batch[key] = value.to(dtype)
        mask = batch["attention_mask"]
        # Left padding shifts every position; explicit position ids keep a row's numbers independent of the batch.
        batch["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if _accepts_logits_to_keep(type(model)):
            batch["logits_to_keep"] = keep
        logits = model(**batch).logits[:, -keep:].float()
        scores = logits if self.formula == "fakescope" else torch.log_softmax(logits, dim=-1)
        return scores.cpu().double()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only: no overflow for large |z|.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
