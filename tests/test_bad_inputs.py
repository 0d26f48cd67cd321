"""The bad-input corpus in tests/data/bad: every case is reported as ``file:line: field: message``, quarantined
verbatim, and never costs the valid records around it (see tests/data/bad/CASES.md)."""

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import generate_with_one_template, make_records, write_dataset, write_png

from fakeinstruct.chain.reader import MAX_LINE_BYTES
from fakeinstruct.cli import main

BAD = Path(__file__).parent / "data" / "bad"
ROOT = "{root}"  # stands for the resolved dataset root in expected messages

# file -> the problems of its bad line(s): (line of the fragment, 0-based; field; start of the message).
# Messages are given whole except where they quote orjson or Pillow wording.
CASES = {
    "malformed_json.jsonl": [(0, "(line)", "invalid JSON: ")],
    "not_an_object.jsonl": [(0, "(line)", "expected a JSON object, got list")],
    "truncated_last_line.jsonl": [(0, "(line)", "invalid JSON: ")],
    "label_number.jsonl": [(0, "label", "Input should be 'real' or 'fake'")],
    "attributes_object.jsonl": [(0, "attributes", "Input should be a valid list")],
    "severity_string.jsonl": [(0, "attributes[0].severity", "Input should be a valid number")],
    "severity_numeric_string.jsonl": [(0, "attributes[0].severity", "Input should be a valid number")],
    "unknown_label.jsonl": [(0, "label", "Input should be 'real' or 'fake'")],
    "unknown_attribute.jsonl": [(0, "attributes[0].name", "unknown attribute 'sharpness'; known: texture, ")],
    "missing_conclusion.jsonl": [(0, "conclusion", "Field required")],
    "missing_id.jsonl": [(0, "id", "Field required")],
    "empty_reasoning.jsonl": [(0, "reasoning", "List should have at least 1 item after validation, not 0")],
    "empty_conclusion.jsonl": [(0, "conclusion", "String should have at least 1 character")],
    "duplicate_id.jsonl": [(1, "id", "duplicate id 'dup-0001' (first on line {first})")],
    "non_utf8.jsonl": [(0, "(line)", "not valid UTF-8 at byte ")],
    "missing_image.jsonl": [(0, "image", "image file not found: images/missing.png")],
    "zero_byte_png.jsonl": [(0, "image", "image file is empty: images/zero_byte.png")],
    "truncated_png.jsonl": [(0, "image", "image does not decode: ")],
    "text_as_png.jsonl": [(0, "image", "image does not decode: cannot identify image file ")],
    "bomb_png.jsonl": [(0, "image", "image does not decode: Image size (10000000000 pixels) exceeds limit")],
    "absolute_path.jsonl": [
        (0, "image", "image '/etc/hostname' must be a '/'-separated path relative to the dataset root")
    ],
    "dotdot_traversal.jsonl": [
        (0, "image", "image 'images/../../outside.png' must not contain empty, '.' or '..' parts")
    ],
    "symlink_escape.jsonl": [(0, "image", f"'images/escape.png' resolves outside the dataset root '{ROOT}'")],
    "nul_in_image_path.jsonl": [
        (0, "image", "image 'images/shot\\x00.png' contains the control character U+0000 (NUL)")
    ],
    "symlink_loop.jsonl": [(0, "image", "cannot resolve 'images/loop.png': symlink loop")],
    "symlink_loop_folder.jsonl": [(0, "image", "cannot resolve 'images/loop_dir/shot.png': symlink loop")],
    "path_too_long.jsonl": [(0, "image", f"cannot resolve 'images/{'a' * 300}.png': File name too long")],
    "control_bel_conclusion.jsonl": [
        (0, "conclusion", "contains the control character U+0007 (BEL); text may hold line breaks and tabs, no other")
    ],
    "control_nul_evidence.jsonl": [(0, "attributes[0].evidence", "contains the control character U+0000 (NUL)")],
    "control_esc_reasoning.jsonl": [(0, "reasoning[1]", "contains the control character U+001B (ESC)")],
    "control_c1_generator.jsonl": [(0, "source.generator", "contains the control character U+009B")],
    "placeholder_evidence.jsonl": [(0, "attributes[0].evidence", "contains the image placeholder '<image>'")],
    "placeholder_reasoning.jsonl": [(0, "reasoning[1]", "contains the image placeholder '<image>'")],
    "placeholder_conclusion.jsonl": [(0, "conclusion", "contains the image placeholder '<image>'")],
    "region_outside.jsonl": [(0, "attributes[0].region", "region [0, 0, 200, 200] exceeds the 64x64 image")],
    "fake_no_anomalous.jsonl": [
        (0, "(record)", "a fake image needs at least one attribute with verdict 'anomalous' as evidence")
    ],
    "label_family_mismatch.jsonl": [(0, "(record)", "label 'fake' disagrees with source.family 'real-camera'")],
    "extra_key.jsonl": [(0, "colour", "Extra inputs are not permitted")],
    "text_too_long.jsonl": [
        (0, "(record)", "the annotation text totals 13694 characters, over the limit of 12000: an answer that quotes")
    ],
}
OVERSIZE = "(generated) oversize_line"
LAST_LINE_CASES = {"truncated_last_line.jsonl"}  # no newline: the bad line can only come last


def build(tmp_path: Path, fragment: bytes, *, last: bool) -> tuple[Path, int]:
    """A dataset of 2 valid records around ``fragment`` (after both when ``last``); returns (chains, first bad line)."""
    root = tmp_path / "data"
    path = write_dataset(root, make_records(2))
    write_png(root / "images" / "bad.png", seed=5)
    write_png(root / "images" / "bad2.png", seed=6)
    for image in BAD.glob("*.png"):
        shutil.copyfile(image, root / "images" / image.name)
    write_png(tmp_path / "outside.png", seed=7)
    os.symlink(tmp_path / "outside.png", root / "images" / "escape.png")
    os.symlink("loop.png", root / "images" / "loop.png")
    os.symlink("loop_dir", root / "images" / "loop_dir")
    first, second = path.read_bytes().splitlines(keepends=True)
    if last:
        path.write_bytes(first + second + fragment)
        return path, 3
    path.write_bytes(first + fragment + second)
    return path, 2


def oversize_line() -> bytes:
    record = make_records(3)[2]
    record["id"] = "bad-0001"
    record["padding"] = "x" * MAX_LINE_BYTES
    return json.dumps(record).encode() + b"\n"


def test_corpus_is_complete():
    files = sorted(p.name for p in BAD.glob("*.jsonl"))
    assert files == sorted(CASES)
    table = (BAD / "CASES.md").read_text(encoding="utf-8")
    for name, problems in CASES.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
        for _, field, _ in problems:
            assert f"`{field}`" in row, (name, field)
    assert len(CASES) + 1 >= 25


@pytest.mark.parametrize("case", [*CASES, OVERSIZE])
def test_bad_input_is_reported_quarantined_and_skipped(case, tmp_path, capsys):
    if case == OVERSIZE:
        fragment = oversize_line()
        problems = [(0, "(line)", f"line is {len(fragment) - 1} bytes, over the limit of {MAX_LINE_BYTES}")]
    else:
        fragment = (BAD / case).read_bytes()
        problems = CASES[case]
    path, first_bad = build(tmp_path, fragment, last=case in LAST_LINE_CASES)
    root = str((tmp_path / "data").resolve())
    bad_lines = fragment.splitlines()
    rejected = [bad_lines[i] for i in sorted({i for i, _, _ in problems})]
    valid = 2 + len(bad_lines) - len(rejected)

    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    errors = out.err.splitlines()
    assert len(errors) == len(problems), errors
    for line, (i, field, message) in zip(errors, problems, strict=True):
        message = message.replace(ROOT, root).format(first=first_bad)
        assert line.startswith(f"{path}:{first_bad + i}: {field}: {message}"), line
    quarantine = path.with_name("chains.quarantine.jsonl")
    assert f"{path}: {valid} valid, {len(rejected)} quarantined; rejected lines written to {quarantine}" in out.out
    assert quarantine.read_bytes() == b"".join(raw + b"\n" for raw in rejected)

    # one small template keeps this fast; the records, not the templates, are under test
    result = generate_with_one_template(path, tmp_path)
    assert (result.records, result.rejected, result.pairs) == (valid, len(rejected), valid)


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("images/a\0b.png", "image path 'images/a\\x00b.png' contains a NUL byte"),
        ("images/loop.png", "cannot resolve 'images/loop.png': symlink loop"),
        ("images/loop_dir/a.png", "cannot resolve 'images/loop_dir/a.png': symlink loop"),
        (f"images/{'a' * 300}.png", f"cannot resolve 'images/{'a' * 300}.png': File name too long"),
    ],
)
def test_paths_that_cannot_be_resolved_are_record_errors(relative, message, tmp_path):
    from fakeinstruct.errors import FakeChainError
    from fakeinstruct.files import resolve_inside

    (tmp_path / "images").mkdir()
    os.symlink("loop.png", tmp_path / "images" / "loop.png")
    os.symlink("loop_dir", tmp_path / "images" / "loop_dir")
    with pytest.raises(FakeChainError) as info:
        resolve_inside(tmp_path, relative)
    assert (info.value.field, info.value.message) == ("image", message)


def _chains_with_endings(tmp_path: Path, endings: list[bytes], bom: bool = False) -> tuple[Path, int]:
    """40 records and one malformed line (line 31) joined by ``endings`` in turn; returns the file and the bad line."""
    path = write_dataset(tmp_path / "data", make_records(40, groups=12))
    lines = path.read_bytes().splitlines()
    lines.insert(30, b'{"id": "cut-off", ')
    data = b"".join(line + endings[i % len(endings)] for i, line in enumerate(lines))
    path.write_bytes(b"\xef\xbb\xbf" + data if bom else data)
    return path, 31


@pytest.mark.parametrize(
    "endings",
    [[b"\r"], [b"\r\n"], [b"\n", b"\r", b"\r\n"], [b"\r", b"\r", b"\n"]],
    ids=["cr", "crlf", "mixed", "mostly-cr"],
)
def test_cr_crlf_and_mixed_line_endings_are_read_line_by_line(endings, tmp_path, capsys, caplog):
    from fakeinstruct.generation import GenerateConfig, generate

    path, bad = _chains_with_endings(tmp_path, endings)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines() == [
        f"{path}:{bad}: (line): invalid JSON: unexpected end of data: line 1 column 19 (char 18)"
    ]
    assert f"{path}: 40 valid, 1 quarantined" in out.out
    assert path.with_name("chains.quarantine.jsonl").read_bytes() == b'{"id": "cut-off", \n'
    # two workers validate byte ranges of the file: the same records, the same line numbers
    config = GenerateConfig(chains=str(path), out=str(tmp_path / "out"), workers=2, progress=False)
    result = generate(config)
    assert (result.records, result.rejected) == (40, 1)
    assert [r.getMessage().partition(" (line)")[0] for r in caplog.records if "invalid JSON" in r.getMessage()] == [
        f"{path}:{bad}:"
    ]


def test_a_utf8_bom_is_read_as_the_start_of_the_file(tmp_path, capsys):
    path, _ = _chains_with_endings(tmp_path, [b"\n"], bom=True)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert f"{path}: 40 valid, 1 quarantined" in out.out  # record 1 is kept; only the malformed line is rejected
    result = generate_with_one_template(path, tmp_path)
    assert (result.records, result.rejected, result.pairs) == (40, 1, 40)
