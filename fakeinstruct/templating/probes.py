"""Load-time template checks: render every phrasing of every template on built-in probe records.

A template that only breaks on some records (a real image, an attribute with no region, a choice shuffled
the other way) must fail here, with its file name, not hours into a long generation run.
"""

from __future__ import annotations

from fakeinstruct.chain import FakeChain
from fakeinstruct.chain.taxonomy import default_taxonomy
from fakeinstruct.errors import TemplateError
from fakeinstruct.templating.engine import render
from fakeinstruct.templating.kinds import ATTRIBUTE_KINDS, TURN_KINDS, starts_with_word
from fakeinstruct.templating.registry import Registry, Template
from fakeinstruct.templating.variables import record_context

_SOURCE_FAKE = {"generator": "probe-gan", "family": "gan", "origin": "probe", "license": "CC0-1.0"}
_SOURCE_REAL = {"generator": "camera", "family": "real-camera", "origin": "probe", "license": "CC0-1.0"}
_PROVENANCE = {"annotation": "human", "label_source": "probe"}

PROBES = [
    {
        "schema_version": "1.0",
        "id": "probe-fake",
        "image": "probe/fake.png",
        "label": "fake",
        "source": _SOURCE_FAKE,
        "attributes": [
            {
                "name": "texture",
                "verdict": "anomalous",
                "evidence": "The grass is smeared into flat brush strokes.",
                "severity": 0.8,
                "region": [0, 0, 64, 64],
            },
            {"name": "edges", "verdict": "anomalous", "evidence": "Contours carry a bright halo."},
            {"name": "lighting", "verdict": "natural", "evidence": "Shadows fall consistently to the left."},
        ],
        "reasoning": ["The texture is painterly.", "Halos follow every contour.", "Both are generator traces."],
        "conclusion": "The image is fake: painterly texture and halos betray a generator.",
        "provenance": _PROVENANCE,
    },
    {
        "schema_version": "1.0",
        "id": "probe-fake-advice",
        "image": "probe/fake2.png",
        "label": "fake",
        "source": _SOURCE_FAKE,
        "attributes": [{"name": "noise", "verdict": "anomalous", "evidence": "Flat areas have no grain at all."}],
        "reasoning": ["No sensor noise is present."],
        "conclusion": "The image is fake.",
        "enhancement": ["Add uniform sensor grain."],
        "provenance": _PROVENANCE,
    },
    {
        "schema_version": "1.0",
        "id": "probe-real",
        "image": "probe/real.png",
        "label": "real",
        "source": _SOURCE_REAL,
        "attributes": [
            {"name": "noise", "verdict": "natural", "evidence": "Uniform fine grain covers the sky."},
            {
                "name": "compression",
                "verdict": "natural",
                "evidence": "A faint 8x8 JPEG grid is aligned with the frame.",
            },
        ],
        "reasoning": ["Sensor grain is uniform.", "The JPEG grid is consistent."],
        "conclusion": "The image is a real photograph.",
        "provenance": _PROVENANCE,
    },
    {
        "schema_version": "1.0",
        "id": "probe-real-odd",
        "image": "probe/real2.png",
        "label": "real",
        "source": _SOURCE_REAL,
        "attributes": [
            {
                "name": "color",
                "verdict": "anomalous",
                "evidence": "The sky is a little more saturated than the rest of the scene.",
                "severity": 0.2,
            },
            {"name": "texture", "verdict": "natural", "evidence": "Bark texture is irregular and sharp."},
        ],
        "reasoning": ["The saturation is an edit, not a generator trace.", "The texture is natural."],
        "conclusion": "The image is a real, edited photograph.",
        "provenance": _PROVENANCE,
    },
]


# Records whose verdicts do not point to their label: a fake with no trace, and a real photograph whose traces add up
# to a generator's. Templates must not argue such a label from the evidence.
PROBES += [
    {
        "schema_version": "1.1",
        "id": "probe-fake-undecided",
        "image": "probe/fake3.png",
        "label": "fake",
        "source": _SOURCE_FAKE,
        "attributes": [
            {"name": "texture", "verdict": "natural", "evidence": "The bark is rough and irregular."},
            {"name": "noise", "verdict": "natural", "evidence": "A fine grain covers the sky."},
        ],
        "reasoning": ["The texture looks natural.", "The noise looks natural.", "Nothing gives the image away."],
        "conclusion": "The evidence is inconclusive: the image is fake according to its record.",
        "provenance": {**_PROVENANCE, "evidence_decides_label": False, "reviewer_call": "real", "blind": True},
    },
    {
        "schema_version": "1.1",
        "id": "probe-real-undecided",
        "image": "probe/real3.png",
        "label": "real",
        "source": _SOURCE_REAL,
        "attributes": [
            {"name": "edges", "verdict": "anomalous", "evidence": "Every contour has a bright rim.", "severity": 0.7},
            {"name": "color", "verdict": "natural", "evidence": "The greens are muted and even."},
        ],
        "reasoning": ["The edges look anomalous.", "The colour looks natural."],
        "conclusion": "The evidence is inconclusive: the image is real according to its source.",
        "provenance": {**_PROVENANCE, "evidence_decides_label": False, "reviewer_call": "unsure", "blind": True},
    },
]


def probe_chains() -> list[FakeChain]:
    return [FakeChain.model_validate(p) for p in PROBES]


def _contexts(template: Template, base: dict):
    """Every context the template can meet on this record: each attribute, each answer, each option order."""
    attributes = base["attributes"] if template.kind in ATTRIBUTE_KINDS or template.kind == "conversation" else [None]
    for attribute in attributes:
        ctx = dict(base) if attribute is None else {**base, "attribute": attribute}
        if template.kind == "closed":
            yield {**ctx, "answer": template.answer_words[ctx["label"]]}, template.answer_words[ctx["label"]]
        elif template.kind == "attribute_closed":
            word = template.answer_words[attribute["verdict"]]
            yield {**ctx, "answer": word}, word
        elif template.kind == "choice":
            for order in (("fake", "real"), ("real", "fake")):
                letters = {label: "AB"[i] for i, label in enumerate(order)}
                options = [{"letter": letters[label], "text": template.choices[label][0]} for label in order]
                yield {**ctx, "answer": letters[ctx["label"]], "options": options}, letters[ctx["label"]]
        else:
            yield ctx, None


def check_template(template: Template, chains: list[FakeChain]) -> int:
    """Render every phrasing of ``template`` on ``chains``; return the number of renders."""
    taxonomy = default_taxonomy()
    renders = 0
    for chain in chains:
        if not all(getattr(chain, name) for name in template.requires):
            continue
        base = record_context(chain.to_data(), taxonomy)
        for context, word in _contexts(template, base):
            questions = list(enumerate(template.questions))
            if template.kind in ATTRIBUTE_KINDS:
                extra = template.questions_by_attribute.get(context["attribute"]["name"], ())
                questions += [(f"by_attribute.{context['attribute']['name']}[{i}]", p) for i, p in enumerate(extra)]
            for i, turn in enumerate(template.turns):
                questions += [(f"turns[{i}].questions[{j}]", p) for j, p in enumerate(turn.questions)]
            for index, phrasing in questions:
                field = f"questions[{index}]"
                text = render(phrasing.compiled, context, file=template.file, field=field, timed=True)
                if not text:
                    raise TemplateError(f"renders empty for record {chain.id}", file=template.file, field=field)
                renders += 1
            for index, phrasing in enumerate(template.answers):
                field = f"answers[{index}]"
                text = render(phrasing.compiled, context, file=template.file, field=field, timed=True)
                if not text:
                    raise TemplateError(f"renders empty for record {chain.id}", file=template.file, field=field)
                if word is not None and not starts_with_word(text, word):
                    raise TemplateError(
                        f"answer must start with the answer word {word!r}, got {text[:60]!r} (record {chain.id})",
                        file=template.file,
                        field=field,
                    )
                renders += 1
    return renders


def check_registry(registry: Registry) -> int:
    """Check every template; conversations must name families that have templates of a usable kind."""
    chains = probe_chains()
    renders = 0
    for template in registry:
        renders += check_template(template, chains)
        for i, turn in enumerate(template.turns):
            if not registry.family(turn.family, TURN_KINDS[turn.family]):
                raise TemplateError(
                    f"no {turn.family} template of kind {'/'.join(TURN_KINDS[turn.family])} is loaded",
                    file=template.file,
                    field=f"turns[{i}].family",
                )
    return renders
