"""Expand one FakeChain record into instruction pairs, template by template.

All randomness comes from a generator seeded by (global seed, record id, template name), so a record's
pairs never depend on which worker or shard handles it, nor on the other records.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterator
from dataclasses import dataclass

from fakeinstruct.chain import FakeChain
from fakeinstruct.context import record_context
from fakeinstruct.errors import TemplateError
from fakeinstruct.registry import ATTRIBUTE_KINDS, REQUIRABLE, Phrasing, Registry, Template
from fakeinstruct.sandbox import render
from fakeinstruct.taxonomy import Taxonomy

# Which template kinds may answer a turn of a conversation, per family.
TURN_KINDS = {
    "detection": ("closed", "choice"),
    "explanation": ("free",),
    "attribute": ("per_attribute", "attribute_closed"),
    "enhancement": ("free",),
}


OPEN_KINDS = ("free", "per_attribute")


@dataclass
class Pair:
    """One instruction example: one or more (question, answer) turns about one image, with metadata."""

    id: str
    task: str
    template_id: str
    chain_id: str
    image: str
    label: str
    generator: str
    group: str
    turns: list[tuple[str, str]]
    attribute: str | None = None
    # For closed-ended pairs: the first word of the answer when the truth is fake/anomalous (positive) and
    # when it is real/natural (negative). The token-probability estimator compares exactly these two.
    positive_word: str | None = None
    negative_word: str | None = None
    answer_word: str | None = None


_MASK = (1 << 64) - 1


class Rng:
    """SplitMix64: a small, fast, well-mixed generator. Seeding ``random.Random`` costs more than a pair."""

    __slots__ = ("state",)

    def __init__(self, seed: int):
        self.state = seed & _MASK

    def next(self) -> int:
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def randrange(self, n: int) -> int:
        return self.next() % n  # the modulo bias is below 2**-50 for the sizes used here

    def choice(self, seq):
        return seq[self.randrange(len(seq))]

    def shuffle(self, items: list) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.randrange(i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, n: int, k: int) -> list[int]:
        """``k`` distinct indices from ``range(n)``, in draw order."""
        pool = list(range(n))
        for i in range(k):
            j = i + self.randrange(n - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def rng_for(seed: int, chain_id: str, name: str) -> Rng:
    digest = hashlib.blake2b(f"{seed}\x1f{chain_id}\x1f{name}".encode(), digest_size=8).digest()
    return Rng(int.from_bytes(digest, "big"))


def _pick(rng: Rng, phrasings: tuple[Phrasing, ...]) -> tuple[int, Phrasing]:
    index = rng.randrange(len(phrasings))
    return index, phrasings[index]


def _starts_with_word(text: str, word: str) -> bool:
    return text.startswith(word) and (len(text) == len(word) or not text[len(word)].isalnum())


class Expander:
    """Renders a registry's templates for records; build once per worker, call :meth:`expand` per record."""

    def __init__(self, registry: Registry, taxonomy: Taxonomy, seed: int = 0):
        self.registry, self.taxonomy, self.seed = registry, taxonomy, seed
        self.templates = [t for t in registry if t.kind != "conversation"]
        self.conversations = [t for t in registry if t.kind == "conversation"]
        self._applicable_cache: dict[tuple, list[Template]] = {}
        self._count_cache: dict[tuple, int] = {}
        self.turn_templates = {
            family: [t for t in self.templates if t.family == family and t.kind in kinds]
            for family, kinds in TURN_KINDS.items()
        }

    def expand(self, chain: FakeChain) -> Iterator[Pair]:
        base = record_context(chain, self.taxonomy)
        for template in self._applicable(chain):
            rng = rng_for(self.seed, chain.id, template.name)
            yield from self._single(template, chain, base, rng)
        for template in self.conversations:
            rng = rng_for(self.seed, chain.id, template.name)
            pair = self._conversation(template, chain, base, rng)
            if pair is not None:
                yield pair

    @staticmethod
    def _applies(template: Template, chain: FakeChain) -> bool:
        return all(getattr(chain, name) for name in template.requires)

    def _new_pair(self, template: Template, chain: FakeChain, template_id: str, turns, attribute=None) -> Pair:
        suffix = f"/{attribute}" if attribute else ""
        return Pair(
            id=f"{chain.id}/{template.name}{suffix}",
            task=template.family,
            template_id=template_id,
            chain_id=chain.id,
            image=chain.image,
            label=chain.label,
            generator=chain.source.generator,
            group=chain.group,
            turns=turns,
            attribute=attribute,
        )

    def _single(self, template: Template, chain: FakeChain, base: dict, rng: Rng) -> Iterator[Pair]:
        if template.kind in ATTRIBUTE_KINDS:
            # templates of one kind share the sample, so both polarities of a yes/no attribute question are
            # asked about the same attributes and their yes/no answers balance exactly
            attributes = base["attributes"]
            sampler = rng_for(self.seed, chain.id, f"{template.kind}/{template.max_per_record}")
            chosen = sorted(sampler.sample(len(attributes), min(template.max_per_record, len(attributes))))
            for index in chosen:
                yield self._answer(template, chain, {**base, "attribute": attributes[index]}, rng)
        else:
            yield self._answer(template, chain, base, rng)

    def _applicable(self, chain: FakeChain) -> list[Template]:
        """The non-conversation templates whose required fields ``chain`` fills (memoised by which it fills)."""
        key = tuple(bool(getattr(chain, name)) for name in REQUIRABLE)
        if key not in self._applicable_cache:
            self._applicable_cache[key] = [t for t in self.templates if self._applies(t, chain)]
        return self._applicable_cache[key]

    def count(self, chain: FakeChain) -> int:
        """How many pairs :meth:`expand` yields for ``chain``, without rendering anything."""
        key = (tuple(bool(getattr(chain, name)) for name in REQUIRABLE), len(chain.attributes))
        if key not in self._count_cache:
            total = 0
            for template in self._applicable(chain):
                total += min(template.max_per_record, key[1]) if template.kind in ATTRIBUTE_KINDS else 1
            for template in self.conversations:
                total += all(self._turn_candidates(turn, chain) for turn in template.turns)
            self._count_cache[key] = total
        return self._count_cache[key]

    def _turn_candidates(self, turn, chain: FakeChain) -> list[Template]:
        candidates = [t for t in self.turn_templates[turn.family] if self._applies(t, chain)]
        if turn.questions:
            # a follow-up question of our own is open-ended: a yes/no answer written for another question
            # would not fit it
            candidates = [t for t in candidates if t.kind in OPEN_KINDS]
        return candidates

    def _answer(self, template: Template, chain: FakeChain, context: dict, rng: Rng) -> Pair:
        """Render one (question, answer) pair of a non-conversation template."""
        context, positive, negative, word = self._closed_context(template, context, rng)
        attribute = context.get("attribute")
        questions = template.questions
        if attribute is not None:
            questions = template.questions_by_attribute.get(attribute["name"], ()) + questions
        qi, question = _pick(rng, questions)
        ai, answer = _pick(rng, template.answers)
        q_text = question.static or render(question.compiled, context, file=template.file, field=f"questions[{qi}]")
        a_text = answer.static or render(answer.compiled, context, file=template.file, field=f"answers[{ai}]")
        if word is not None and not _starts_with_word(a_text, word):
            raise TemplateError(
                f"answer does not start with the answer word {word!r}: {a_text[:80]!r}",
                file=template.file,
                field=f"answers[{ai}]",
            )
        name = attribute["name"] if attribute else None
        pair = self._new_pair(template, chain, f"{template.name}#q{qi}a{ai}", [(q_text, a_text)], name)
        pair.positive_word, pair.negative_word, pair.answer_word = positive, negative, word
        return pair

    @staticmethod
    def _closed_context(template: Template, context: dict, rng: Rng):
        """Add ``answer`` (and ``options``) for closed kinds; return the positive/negative/correct words."""
        if template.kind == "closed":
            words = template.answer_words
            word = words[context["label"]]
            return {**context, "answer": word}, words["fake"], words["real"], word
        if template.kind == "attribute_closed":
            words = template.answer_words
            word = words[context["attribute"]["verdict"]]
            return {**context, "answer": word}, words["anomalous"], words["natural"], word
        if template.kind == "choice":
            options = [(label, rng.choice(template.choices[label])) for label in ("fake", "real")]
            rng.shuffle(options)
            letters = {label: string.ascii_uppercase[i] for i, (label, _) in enumerate(options)}
            word = letters[context["label"]]
            shown = [{"letter": letters[label], "text": text} for label, text in options]
            return {**context, "answer": word, "options": shown}, letters["fake"], letters["real"], word
        return context, None, None, None

    def _conversation(self, template: Template, chain: FakeChain, base: dict, rng: Rng) -> Pair | None:
        attributes = base["attributes"]
        context = {**base, "attribute": attributes[rng.randrange(len(attributes))]}
        turns, ids = [], []
        first_closed: Pair | None = None
        for i, turn in enumerate(template.turns):
            candidates = self._turn_candidates(turn, chain)
            if not candidates:
                return None
            component = candidates[rng.randrange(len(candidates))]
            pair = self._answer(component, chain, context if component.kind in ATTRIBUTE_KINDS else base, rng)
            question, answer = pair.turns[0]
            if turn.questions:
                qi, phrasing = _pick(rng, turn.questions)
                field = f"turns[{i}].questions[{qi}]"
                question = phrasing.static or render(phrasing.compiled, context, file=template.file, field=field)
            turns.append((question, answer))
            ids.append(pair.template_id)
            if first_closed is None and i == 0 and pair.positive_word:
                first_closed = pair
        out = self._new_pair(template, chain, f"{template.name}#" + "+".join(ids), turns)
        if first_closed is not None:
            out.positive_word, out.negative_word = first_closed.positive_word, first_closed.negative_word
            out.answer_word = first_closed.answer_word
        return out
