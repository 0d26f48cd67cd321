"""From findings to a reasoning chain: the steps and the conclusion that lead from the evidence to the label.

The findings (drafted by :mod:`fakeinstruct.drafting.evidence`, possibly corrected by a reviewer) are label-blind; this is
where the label comes in, and where a record whose evidence does not decide its label (by the fixed rule of :mod:`fakeinstruct.chain.verdict`)
says so rather than hiding it.
"""

from __future__ import annotations

from fakeinstruct.chain.verdict import evidence_decides
from fakeinstruct.drafting.evidence import Finding

# How the reasoning names each attribute, and whether the name is plural.
_NOUNS = {
    "texture": ("texture", False),
    "edges": ("edges", True),
    "clarity": ("sharpness", False),
    "noise": ("noise", False),
    "compression": ("compression", False),
    "color": ("colour", False),
}


def _noun(name: str) -> tuple[str, bool]:
    """How the reasoning names an attribute; a reviewer may add attributes the drafter does not measure."""
    if name in _NOUNS:
        return _NOUNS[name]
    from fakeinstruct.chain.taxonomy import default_taxonomy

    title = default_taxonomy()[name].title if name in default_taxonomy() else name
    return title, title.endswith("s") or " and " in title


def _names(findings: list[Finding]) -> str:
    names = [_noun(f.name)[0] for f in findings]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _looks(findings: list[Finding]) -> str:
    plural = len(findings) > 1 or _noun(findings[0].name)[1]
    return "look" if plural else "looks"


def _step(finding: Finding, verdict: str, clause: str) -> str:
    noun = _noun(finding.name)[0]
    return f"The {noun} {_looks([finding])} {verdict}{clause}."


def reason(findings: list[Finding], label: str, label_source: str) -> tuple[list[str], str, bool]:
    """Reasoning steps and the conclusion from the findings to the given label; also whether the evidence fails to
    decide the label by the fixed rule of :mod:`fakeinstruct.chain.verdict` (then the conclusion says so)."""
    anomalous = sorted((f for f in findings if f.anomalous), key=lambda f: -(f.severity or 0.0))
    natural = [f for f in findings if not f.anomalous]
    total = len(findings)
    undecided = not evidence_decides(findings, label)

    if label == "fake":
        if undecided:
            steps = [_step(f, "natural", f": {f.why}") for f in natural]
            steps += [_step(f, "anomalous", f", but only faintly: {f.why}") for f in anomalous]
            steps.append(
                f"The {total} traces looked at do not add up to a generator's: at the pixel level the image could be "
                f"a camera photograph, and the fake label rests on its generation record ({label_source}), not on "
                "this evidence."
            )
            conclusion = (
                "The evidence is inconclusive: the image is fake according to its generation record, but what it "
                f"shows ({_names(natural or anomalous)}) does not give it away."
            )
            return steps, conclusion, True
        steps = [_step(f, "anomalous", f": {f.why}") for f in anomalous]
        if natural:
            steps.append(
                f"The {_names(natural)} {_looks(natural)} natural, but a generator can get "
                f"{'these' if len(natural) > 1 else 'this'} right, so {'they do' if len(natural) > 1 else 'it does'} "
                "not speak for a camera."
            )
        steps.append(
            f"{len(anomalous)} of the {total} traces {'points' if len(anomalous) == 1 else 'point'} away "
            "from a camera pipeline, so the image is fake."
        )
        lead = anomalous[0]
        if len(anomalous) == 1:
            conclusion = f"The image is fake: the {_noun(lead.name)[0]} gives it away, since {lead.why}."
        else:
            conclusion = (
                f"The image is fake: its {_names(anomalous)} {'both' if len(anomalous) == 2 else 'all'} depart "
                f"from what a camera leaves, above all the {_noun(lead.name)[0]}, since {lead.why}."
            )
        return steps, conclusion, False

    steps = [_step(f, "natural", f": {f.why}") for f in natural]
    steps += [_step(f, "anomalous", f", but {f.benign}") for f in anomalous]
    if undecided:
        steps.append(
            f"{len(anomalous)} of the {total} traces look anomalous, enough to point to a generator; the real label "
            f"rests on the image's source record ({label_source}), not on this evidence."
        )
        conclusion = (
            "The evidence is inconclusive: the image is a real photograph according to its source, but its "
            f"{_names(anomalous)} look anomalous, so what it shows would not clear it."
        )
        return steps, conclusion, True
    if anomalous:
        steps.append(
            f"The camera traces in the {_names(natural)} outweigh the faint anomaly in the {_names(anomalous)}, "
            "which a camera photograph can show too, so the image is real."
        )
        conclusion = (
            f"The image is a real photograph: its {_names(natural)} look as a camera leaves them, and the "
            f"anomalous {_names(anomalous)} {'are' if _looks(anomalous) == 'look' else 'is'} not specific to a "
            "generator."
        )
    else:
        steps.append(f"All {total} traces look as a camera leaves them, so the image is real.")
        conclusion = (
            f"The image is a real photograph: its {_names(natural)} all look as a camera pipeline leaves them, "
            "with no generator trace."
        )
    return steps, conclusion, False
