"""Properties of reading and expanding FakeChain records, checked on records drawn from the schema and the taxonomy:
a valid record parses and expands into valid pairs; a mutated one gives valid pairs or the package's own errors,
never another exception. The mutator is shared with the fuzz run in tests/test_fuzz.py."""

import contextlib
import copy
import json
import random

import orjson
import pytest
from conftest import write_png
from hypothesis import HealthCheck, assume, given, settings, target
from hypothesis import strategies as st

from fakeinstruct.chain import MAX_TEXT_CHARS, GeneratorFamily
from fakeinstruct.chain.reader import parse_line, read_chains
from fakeinstruct.chain.taxonomy import default_taxonomy
from fakeinstruct.chain.validate import validate_chains
from fakeinstruct.errors import FakeChainError, FakeInstructError
from fakeinstruct.generation.expand import Expander
from fakeinstruct.templating.engine import MAX_RENDERED_CHARS
from fakeinstruct.templating.kinds import FAMILIES, starts_with_word
from fakeinstruct.templating.registry import load_registry

TAXONOMY = default_taxonomy()
EXPANDER = Expander(load_registry(entry_points=False), TAXONOMY)
IMAGE = "images/shared.png"
FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# --- valid records, drawn from the schema ------------------------------------------------------------------------

# no control characters but line breaks and tabs: the schema refuses the others
_TEXT_CHARS = st.characters(codec="utf-8", exclude_categories=("Cc",), include_characters="\n\t")


def texts(max_size: int):
    return st.text(_TEXT_CHARS, min_size=1, max_size=max_size).filter(lambda s: s.strip() and "<image>" not in s)


short_text = st.one_of(texts(40), st.sampled_from(["camera", "CC0-1.0", "x", " padded "]), texts(200))
text = st.one_of(texts(80), st.just("The grass is smeared into flat brush strokes."), texts(600), texts(4000))
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,40}", fullmatch=True)
image_paths = st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}", fullmatch=True), min_size=1, max_size=3)


@st.composite
def regions(draw):
    x0, y0 = draw(st.integers(0, 2000)), draw(st.integers(0, 2000))
    return [x0, y0, x0 + draw(st.integers(1, 500)), y0 + draw(st.integers(1, 500))]


@st.composite
def attributes(draw, fake: bool):
    names = draw(st.lists(st.sampled_from(TAXONOMY.names), min_size=1, max_size=len(TAXONOMY), unique=True))
    out = []
    for name in names:
        attribute = {"name": name, "verdict": draw(st.sampled_from(["anomalous", "natural"])), "evidence": draw(text)}
        for key, values in (("measurement", text), ("region", regions()), ("severity", st.floats(0, 1))):
            if draw(st.booleans()):
                attribute[key] = draw(values)
        out.append(attribute)
    if fake and not any(a["verdict"] == "anomalous" for a in out):
        out[0]["verdict"] = "anomalous"
    return out


@st.composite
def records(draw) -> dict:
    label = draw(st.sampled_from(["real", "fake"]))
    fakes = [f.value for f in GeneratorFamily if f is not GeneratorFamily.real_camera]
    family = "real-camera" if label == "real" else draw(st.sampled_from(fakes))
    source = {"generator": draw(short_text), "family": family, "origin": draw(short_text), "license": "CC0-1.0"}
    for key in ("group", "author"):
        if draw(st.booleans()):
            source[key] = draw(short_text)
    provenance = {"annotation": draw(st.sampled_from(["human", "machine", "human+machine"]))}
    provenance.update(label_source=draw(short_text), machine_fields=draw(st.lists(short_text, max_size=3)))
    record = {
        "schema_version": "1.0",
        "id": draw(ids),
        "image": "/".join(draw(image_paths)) + ".png",
        "label": label,
        "source": source,
        "attributes": draw(attributes(label == "fake")),
        "reasoning": draw(st.lists(text, min_size=1, max_size=5)),
        "conclusion": draw(text),
        "provenance": provenance,
    }
    if draw(st.booleans()):
        record["enhancement"] = draw(st.lists(text, max_size=3))
    assume(text_size(record) <= MAX_TEXT_CHARS)
    return record


def text_size(record: dict) -> int:
    parts = [*record["reasoning"], record["conclusion"], *record.get("enhancement", [])]
    parts += [a[k] for a in record["attributes"] for k in ("evidence", "measurement") if k in a]
    return sum(len(p.strip()) for p in parts)


def assert_valid_pairs(chain) -> int:
    """Expand ``chain``; every pair must be well formed and agree with the record. Returns the number of pairs."""
    pairs = list(EXPANDER.expand(chain))
    assert len(pairs) == EXPANDER.count(chain) > 0
    verdicts = {a.name: a.verdict for a in chain.attributes}
    for pair in pairs:
        assert pair.id.startswith(f"{chain.id}/") and pair.chain_id == chain.id and pair.task in FAMILIES
        assert (pair.image, pair.label, pair.generator, pair.group) == (
            chain.image,
            chain.label,
            chain.source.generator,
            chain.group,
        )
        assert pair.turns
        for question, answer in pair.turns:
            for part in (question, answer):
                assert part and part == part.strip() and len(part) <= MAX_RENDERED_CHARS
                assert "<image>" not in part
        assert pair.attribute is None or pair.attribute in verdicts
        if pair.answer_word is None:
            assert pair.positive_word is None and pair.negative_word is None
            continue
        assert starts_with_word(pair.turns[0][1], pair.answer_word), (pair.template_id, pair.turns[0][1][:80])
        assert pair.answer_word in (pair.positive_word, pair.negative_word)
        if pair.task != "multi_turn":  # a conversation's first turn may ask about an attribute it does not name
            positive = verdicts[pair.attribute] == "anomalous" if pair.attribute else chain.label == "fake"
            assert pair.answer_word == (pair.positive_word if positive else pair.negative_word)
    return len(pairs)


@FAST
@given(records())
def test_valid_record_parses_and_expands_into_valid_pairs(record):
    target(float(text_size(record)))  # steer towards records with the most text: the longest answers
    line = parse_line(orjson.dumps(record), file="chains.jsonl", number=1, taxonomy=TAXONOMY)
    assert line.ok, [str(e) for e in line.errors]
    assert line.chain.id == record["id"] and line.chain.label == record["label"]
    assert assert_valid_pairs(line.chain) > 0


def longest_record(label: str, layout: str) -> dict:
    """A valid record with MAX_TEXT_CHARS of annotation text, laid out as ``layout`` says."""
    names = TAXONOMY.names
    record = {
        "schema_version": "1.0",
        "id": "longest",
        "image": IMAGE,
        "label": label,
        "source": {"generator": "g" * 200, "family": "gan" if label == "fake" else "real-camera", "origin": "o"},
        "attributes": [{"name": n, "verdict": "anomalous", "evidence": "e"} for n in names],
        "reasoning": ["r"],
        "conclusion": "c",
        "enhancement": [],
        "provenance": {"annotation": "human", "label_source": "probe"},
    }
    record["source"]["license"] = "CC0-1.0"
    if label == "real":
        for attribute in record["attributes"][1:]:
            attribute["verdict"] = "natural"
    left = MAX_TEXT_CHARS - text_size(record)
    if layout == "evidence":
        for attribute in record["attributes"]:
            attribute["evidence"] += "e" * (left // len(names))
    elif layout == "reasoning":
        record["reasoning"] = ["r" * 3999, "r" * 3999, "r" * (left - 7998 + 1)]
    else:  # advice and evidence of the first attributes
        record["enhancement"] = ["h" * 3999]
        record["attributes"][0]["evidence"] += "e" * 3999
        record["attributes"][1]["evidence"] += "e" * (left - 7998)
    assert text_size(record) <= MAX_TEXT_CHARS
    return record


@pytest.mark.parametrize("label", ["fake", "real"])
@pytest.mark.parametrize("layout", ["evidence", "reasoning", "advice"])
def test_the_longest_valid_records_expand_into_valid_pairs(label, layout):
    line = parse_line(orjson.dumps(longest_record(label, layout)), file="c.jsonl", number=1, taxonomy=TAXONOMY)
    assert line.ok, [str(e) for e in line.errors]
    assert_valid_pairs(line.chain)


# --- mutations ---------------------------------------------------------------------------------------------------

JUNK = [None, True, False, 0, -1, 1.5, 2**63, -(2**63), 2**70, 1e308, -0.0, "", " ", "\u0000", "<image>", "0.8", "1"]
JUNK += ["real", "fake", "anomalous", "texture", "/etc/passwd", "../x.png", "images/../../x.png", "\u202e\u0301", "😀"]
JUNK += [[], {}, [0, 0, 64, 64], [0.0, 0, 64, 64], [True, 0, 1, 1], {"name": "texture"}, [None], [[[]]], {"": {}}]
RAW_TOKENS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1" * 400, "[" * 2000 + "]" * 2000, '"\\ud800"']


def junk(rng: random.Random):
    roll = rng.random()
    if roll < 0.45:
        return copy.deepcopy(rng.choice(JUNK))
    if roll < 0.6:
        return rng.choice(
            [float("nan"), float("inf"), -float("inf"), rng.uniform(-2, 2), rng.randint(-(10**30), 10**30)]
        )
    if roll < 0.8:  # unicode of every kind, lone surrogates included
        size = rng.choice([1, 5, 50, 4001, 20_000])
        return "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0, 0x10FFFF)])) for _ in range(size))
    if roll < 0.9:  # nested junk
        value = junk(rng)
        for _ in range(rng.randint(1, 30)):
            value = [value] if rng.random() < 0.5 else {"k": value}
        return value
    return rng.choice([{"x": 1}, ["a", "b"], "a" * rng.randint(0, 300)])


def _paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*prefix, key))


def mutate(record: dict, rng: random.Random) -> bytes:
    """One JSONL line from ``record`` with one to three mutations: fields deleted, renamed, replaced by junk of
    the wrong type or size, raw non-JSON numbers, or bytes cut, inserted or flipped on the line itself."""
    record = copy.deepcopy(record)
    tokens = []
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(record))[1:]
        if not paths:
            break
        path = rng.choice(paths)
        parent = record
        for key in path[:-1]:
            parent = parent[key]
        key, kind = path[-1], rng.choice(["delete", "replace", "replace", "rename", "token", "twin"])
        if kind == "delete":
            del parent[key]
        elif kind == "replace":
            parent[key] = junk(rng)
        elif kind == "rename" and isinstance(parent, dict):
            parent[rng.choice(["Label", "colour", "", key + " "])] = parent.pop(key)
        elif kind == "token":
            parent[key] = f"@@token{len(tokens)}@@"
            tokens.append(rng.choice(RAW_TOKENS))
        elif kind == "twin" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))  # a second attribute or step just like this one
    line = json.dumps(record, ensure_ascii=rng.random() < 0.3)
    for i, token in enumerate(tokens):
        line = line.replace(f'"@@token{i}@@"', token)
    raw = line.encode("utf-8", "surrogatepass")
    if rng.random() < 0.25:
        at = rng.randrange(len(raw) + 1)
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        raw = rng.choice([raw[:at], raw[:at] + noise + raw[at:], raw[:at] + noise + raw[at + len(noise) :], noise])
    return raw.replace(b"\n", b" ").replace(b"\r", b" ")


def check_line(raw: bytes, number: int = 1):
    """Parse one line the way the reader does; a valid record must expand into valid pairs. Returns the Line."""
    line = parse_line(raw, file="chains.jsonl", number=number, taxonomy=TAXONOMY)
    for err in line.errors:
        assert isinstance(err, FakeChainError) and (err.file, err.line) == ("chains.jsonl", number)
        assert err.field and str(err).startswith(f"chains.jsonl:{number}: {err.field}: ")
    if line.ok:
        assert_valid_pairs(line.chain)
    return line


@settings(FAST, max_examples=300)
@given(records(), st.randoms(use_true_random=False))
def test_mutated_record_gives_valid_pairs_or_its_own_error(record, rng):
    # the package's own error is an acceptable outcome; anything else fails the test
    with contextlib.suppress(FakeInstructError):
        check_line(mutate(record, rng))


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_on_a_line_are_reported_not_raised(raw):
    raw = raw.replace(b"\n", b" ").replace(b"\r", b" ")
    if raw.strip():
        assert not check_line(raw).ok


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records(), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_reading_and_validating_a_file_of_mutated_records(tmp_path, records_, rng):
    root = tmp_path / "data"
    if not (root / IMAGE).exists():
        write_png(root / IMAGE, seed=0)
    lines = []
    for i, record in enumerate(records_):
        record.update(id=f"rec-{i}", image=IMAGE)
        record["attributes"] = [{k: v for k, v in a.items() if k != "region"} for a in record["attributes"]]
        lines.append(orjson.dumps(record))
        lines.append(mutate(record, rng))
    path = root / "chains.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    expected = sum(1 for raw in lines if raw.strip())
    read = list(read_chains(path))
    assert len(read) == expected
    assert all(line.ok for line in read if line.number % 2)  # the unmutated records, on the odd lines
    report = validate_chains(path)
    assert (report.valid, report.total) == (sum(line.ok for line in read), expected)
    assert all(isinstance(err, FakeChainError) for err in report.errors)
    for line in read:
        if line.ok:
            assert_valid_pairs(line.chain)


def test_mutator_produces_both_outcomes():
    # guards the properties above against a mutator that only ever breaks records, or never does
    rng = random.Random(7)
    base = {
        "schema_version": "1.0",
        "id": "r1",
        "image": IMAGE,
        "label": "fake",
        "source": {"generator": "g", "family": "gan", "origin": "o", "license": "CC0-1.0"},
        "attributes": [{"name": "texture", "verdict": "anomalous", "evidence": "Smeared grass."}],
        "reasoning": ["Painterly."],
        "conclusion": "Fake.",
        "enhancement": ["Add grain."],
        "provenance": {"annotation": "human", "label_source": "probe", "machine_fields": ["conclusion"]},
    }
    outcomes = [check_line(mutate(base, rng)).ok for _ in range(400)]
    assert 0 < sum(outcomes) < len(outcomes)


@pytest.mark.parametrize("value", ["0.8", True, "high", [0.8]])
def test_a_severity_that_lax_parsing_would_coerce_is_refused(value):
    record = {
        "schema_version": "1.0",
        "id": "r1",
        "image": IMAGE,
        "label": "real",
        "source": {"generator": "camera", "family": "real-camera", "origin": "o", "license": "CC0-1.0"},
        "attributes": [{"name": "noise", "verdict": "natural", "evidence": "Grain.", "severity": value}],
        "reasoning": ["Grain is uniform."],
        "conclusion": "Real.",
        "provenance": {"annotation": "human", "label_source": "camera"},
    }
    line = check_line(json.dumps(record).encode())
    assert [e.field for e in line.errors] == ["attributes[0].severity"]


@given(st.lists(st.sampled_from([b"a", b"bc", b" ", b"{}", b"\r", b"\n", b"\r\n", b"\xef\xbb\xbf"]), max_size=40))
@settings(max_examples=300, deadline=None, database=None)
def test_lines_end_at_lf_crlf_or_cr_across_reads(pieces):
    import io
    import re

    from fakeinstruct.chain import reader

    data = b"".join(pieces)
    body = data[3:] if data.startswith(reader.BOM) else data
    expected, start = [], len(data) - len(body)
    for match in re.finditer(rb"([^\r\n]*)(\r\n|\r|\n|$)", body):
        if match.group(2) or match.group(1):
            expected.append((start + match.start(), match.group(1)))
        if not match.group(2):
            break
    for size in (1, 2, 3, 1 << 20):  # lines and \r\n split between reads, or not
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(reader, "_READ", size)
            assert list(reader.iter_lines(io.BytesIO(data))) == expected, size
    assert reader.count_lines(body) == len(expected)
