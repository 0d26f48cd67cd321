"""Expand one FakeChain record into instruction pairs, template by template.

All randomness comes from a generator seeded by (global seed, record id, template name), so a record's
pairs never depend on which worker or shard handles it, nor on the other records.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import blake2b

from fakeinstruct.chain import FakeChain
from fakeinstruct.chain.taxonomy import Taxonomy
from fakeinstruct.errors import TemplateError
from fakeinstruct.templating.engine import RenderMemo
from fakeinstruct.templating.kinds import ATTRIBUTE_KINDS, OPEN_KINDS, REQUIRABLE, TURN_KINDS, starts_with_word
from fakeinstruct.templating.registry import Phrasing, Registry, Template
from fakeinstruct.templating.variables import record_context

# A FakeChain, or the JSON dict of a validated one (what generation holds after its validation pass).
Record = FakeChain | dict


@dataclass(slots=True)
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

    def randrange(self, n: int) -> int:
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return (z ^ (z >> 31)) % n  # the modulo bias is below 2**-50 for the sizes used here

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


def _seed_hash(seed: int, chain_id: str):
    """The hash state after the (seed, record id) prefix, shared by every generator of one record."""
    return blake2b(f"{seed}\x1f{chain_id}\x1f".encode(), digest_size=8)


def _seeded(prefix, name: str) -> Rng:
    # the prefix is hashed once per record, the name once per generator
    digest = prefix.copy()
    digest.update(name.encode())
    return Rng(int.from_bytes(digest.digest(), "big"))


# Families whose answers argue from the evidence to the verdict: left out for undecided records on request.
REASONED = ("explanation", "enhancement", "multi_turn")


def _requirable(data: dict) -> tuple[bool, ...]:
    return tuple(bool(data.get(name)) for name in REQUIRABLE)


def record_data(chain: Record) -> dict:
    """A record as the expander reads it: the JSON of a validated :class:`FakeChain` (fields left unset omitted)."""
    return chain.to_data() if isinstance(chain, FakeChain) else chain


def _reraise(err: TemplateError) -> None:
    raise err


class _Record:
    """What every pair of one record shares, computed once per record rather than once per pair."""

    __slots__ = ("_contexts", "_samples", "attributes", "base", "meta", "prefix", "requirable")

    def __init__(self, seed: int, data: dict, base: dict, shape: tuple):
        self.base, self.attributes = base, base["attributes"]
        self.prefix = _seed_hash(seed, data["id"])
        source = data["source"]
        self.meta = (
            data["id"],
            data["image"],
            data["label"],
            source["generator"],
            source.get("group") or data["image"],
        )
        self.requirable = shape
        self._contexts: dict[int, dict] = {}
        self._samples: dict[str, list[int]] = {}

    def rng(self, name: str) -> Rng:
        return _seeded(self.prefix, name)

    def attribute_context(self, index: int) -> dict:
        """The context of the record's attribute ``index``; rendering never writes to a context, so it is shared."""
        context = self._contexts.get(index)
        if context is None:
            context = self._contexts[index] = {**self.base, "attribute": self.attributes[index]}
        return context

    def sample(self, kind: str, max_per_record: int) -> list[int]:
        """The attribute indices that templates of ``kind`` ask about, in order (the same for each of them)."""
        key = f"{kind}/{max_per_record}"
        chosen = self._samples.get(key)
        if chosen is None:
            n = len(self.attributes)
            chosen = self._samples[key] = sorted(self.rng(key).sample(n, min(max_per_record, n)))
        return chosen


class Expander:
    """Renders a registry's templates for records; build once per worker, call :meth:`expand` per record."""

    def __init__(self, registry: Registry, taxonomy: Taxonomy, seed: int = 0, exclude_undecided: bool = False):
        """``exclude_undecided``: give records whose evidence does not decide their label no explanation,
        enhancement or multi-turn pairs (by default they get them, phrased by their inconclusive conclusion)."""
        self.registry, self.taxonomy, self.seed = registry, taxonomy, seed
        self.exclude_undecided = exclude_undecided
        self.templates = [t for t in registry if t.kind != "conversation"]
        self.conversations = [t for t in registry if t.kind == "conversation"]
        self._applicable_cache: dict[tuple, list[Template]] = {}
        self._count_cache: dict[tuple, int] = {}
        self._candidates_cache: dict[tuple, list[Template]] = {}
        self._questions_cache: dict[tuple[str, str], tuple[Phrasing, ...]] = {}
        self._memo = RenderMemo()
        self.turn_templates = {
            family: [t for t in self.templates if t.family == family and t.kind in kinds]
            for family, kinds in TURN_KINDS.items()
        }

    def expand(self, chain: Record, on_error: Callable[[TemplateError], None] = _reraise) -> Iterator[Pair]:
        """The pairs of ``chain`` (a :class:`FakeChain`, or one as :func:`record_data` gives it). A template that fails
        on it is handed to ``on_error``, which raises it by default or may note it, leaving that pair out: every
        generator is seeded per template, so the record's other pairs are the same either way."""
        data = record_data(chain)
        record = _Record(self.seed, data, record_context(data, self.taxonomy), self._shape(data))
        for template in self._applicable(data, record.requirable):
            rng = record.rng(template.name)
            if template.kind in ATTRIBUTE_KINDS:
                # templates of one kind share the sample, so both polarities of a yes/no attribute question are
                # asked about the same attributes and their yes/no answers balance exactly
                contexts = [record.attribute_context(i) for i in record.sample(template.kind, template.max_per_record)]
            else:
                contexts = [record.base]
            for context in contexts:
                try:
                    yield self._answer(template, record, context, rng)
                except TemplateError as err:
                    on_error(err)
        for template in self._conversations(record.requirable):
            try:
                pair = self._conversation(template, data, record, record.rng(template.name))
            except TemplateError as err:
                on_error(err)
                continue
            if pair is not None:
                yield pair

    @staticmethod
    def _applies(template: Template, data: dict) -> bool:
        return all(data.get(name) for name in template.requires)

    def _shape(self, data: dict) -> tuple[bool, ...]:
        """Which required fields ``data`` fills, and whether its open-ended pairs are left out: what decides which
        templates apply to it."""
        excluded = self.exclude_undecided and data["provenance"].get("evidence_decides_label") is False
        return (*_requirable(data), excluded)

    def _applicable(self, data: dict, key: tuple | None = None) -> list[Template]:
        """The non-conversation templates that apply to ``data`` (memoised by its shape)."""
        key = key or self._shape(data)
        if key not in self._applicable_cache:
            self._applicable_cache[key] = [
                t for t in self.templates if self._applies(t, data) and not (key[-1] and t.family in REASONED)
            ]
        return self._applicable_cache[key]

    def _conversations(self, shape: tuple) -> list[Template]:
        return [] if shape[-1] else self.conversations

    def count(self, chain: Record) -> int:
        """How many pairs :meth:`expand` yields for ``chain``, without rendering anything."""
        data = record_data(chain)
        key = (self._shape(data), len(data["attributes"]))
        if key not in self._count_cache:
            total = 0
            for template in self._applicable(data, key[0]):
                total += min(template.max_per_record, key[1]) if template.kind in ATTRIBUTE_KINDS else 1
            for template in self._conversations(key[0]):
                total += all(self._turn_candidates(turn, data) for turn in template.turns)
            self._count_cache[key] = total
        return self._count_cache[key]

    def _turn_candidates(self, turn, data: dict) -> list[Template]:
        candidates = [t for t in self.turn_templates[turn.family] if self._applies(t, data)]
        if turn.questions:
            # a follow-up question of our own is open-ended: a yes/no answer written for another question
            # would not fit it
            candidates = [t for t in candidates if t.kind in OPEN_KINDS]
        return candidates

    def _answer(self, template: Template, record: _Record, context: dict, rng: Rng) -> Pair:
        """One (question, answer) pair of a non-conversation template."""
        question, answer, template_id, positive, negative, word, name = self._turn(template, context, rng)
        chain_id, image, label, generator, group = record.meta
        pair_id = f"{chain_id}/{template.name}/{name}" if name else f"{chain_id}/{template.name}"
        turns = [(question, answer)]
        return Pair(
            pair_id, template.family, template_id, chain_id, image, label, generator, group, turns, name, positive,
            negative, word,
        )  # fmt: skip

    def _turn(self, template: Template, context: dict, rng: Rng) -> tuple:
        """Render one (question, answer) of a non-conversation template: (question, answer, template id,
        positive word, negative word, answer word, attribute name)."""
        context, positive, negative, word = self._closed_context(template, context, rng)
        attribute = context.get("attribute")
        questions = template.questions
        if attribute is not None:
            questions = self._attribute_questions(template, attribute["name"])
        qi = rng.randrange(len(questions))
        question = questions[qi]
        ai = rng.randrange(len(template.answers))
        answer = template.answers[ai]
        render = self._memo.render
        q_text = question.static or render(question, context, template.file, "questions", qi)
        a_text = answer.static or render(answer, context, template.file, "answers", ai)
        if word is not None and not starts_with_word(a_text, word):
            raise TemplateError(
                f"answer does not start with the answer word {word!r}: {a_text[:80]!r}",
                file=template.file,
                field=f"answers[{ai}]",
            )
        name = attribute["name"] if attribute else None
        return q_text, a_text, f"{template.name}#q{qi}a{ai}", positive, negative, word, name

    def _attribute_questions(self, template: Template, name: str) -> tuple[Phrasing, ...]:
        key = (template.name, name)
        questions = self._questions_cache.get(key)
        if questions is None:
            questions = template.questions_by_attribute.get(name, ()) + template.questions
            self._questions_cache[key] = questions
        return questions

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

    def _conversation(self, template: Template, data: dict, record: _Record, rng: Rng) -> Pair | None:
        context = record.attribute_context(rng.randrange(len(record.attributes)))
        turns, ids = [], []
        first_closed = None
        for i, turn in enumerate(template.turns):
            key = (template.name, i, record.requirable)
            candidates = self._candidates_cache.get(key)
            if candidates is None:
                candidates = self._candidates_cache[key] = self._turn_candidates(turn, data)
            if not candidates:
                return None
            component = candidates[rng.randrange(len(candidates))]
            own = context if component.kind in ATTRIBUTE_KINDS else record.base
            question, answer, template_id, positive, negative, word, _ = self._turn(component, own, rng)
            if turn.questions:
                qi = rng.randrange(len(turn.questions))
                phrasing = turn.questions[qi]
                where = f"turns[{i}].questions"
                question = phrasing.static or self._memo.render(phrasing, context, template.file, where, qi)
            turns.append((question, answer))
            ids.append(template_id)
            if first_closed is None and i == 0 and positive:
                first_closed = (positive, negative, word)
        chain_id, image, label, generator, group = record.meta
        template_id = f"{template.name}#" + "+".join(ids)
        out = Pair(
            f"{chain_id}/{template.name}",
            template.family,
            template_id,
            chain_id,
            image,
            label,
            generator,
            group,
            turns,
        )
        if first_closed is not None:
            out.positive_word, out.negative_word, out.answer_word = first_closed
        return out
