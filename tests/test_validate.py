import json
import os

from conftest import make_records, write_dataset

from fakeinstruct.chain.validate import validate_chains
from fakeinstruct.cli import main


def bad_lines(root):
    """Bad lines of several kinds, each with the field its error must name."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images" / "empty.png").write_bytes(b"")
    (root / "images" / "text.png").write_text("not an image")
    os.symlink("/etc/hostname", root / "images" / "escape.png")
    rec = make_records(1)[0]

    def variant(**changes):
        return json.dumps({**rec, "id": f"bad-{len(cases)}", **changes})

    cases = []
    cases.append(('{"id": "x", ', "(line)"))
    cases.append(("[1, 2]", "(line)"))
    cases.append((variant(label="blurry"), "label"))
    cases.append((variant(image="images/missing.png"), "image"))
    cases.append((variant(image="images/empty.png"), "image"))
    cases.append((variant(image="images/text.png"), "image"))
    cases.append((variant(image="images/escape.png"), "image"))
    cases.append((variant(image="../outside.png"), "image"))
    cases.append((json.dumps(rec), "id"))  # duplicate of the first valid record
    return cases


def test_bad_lines_are_reported_and_quarantined_valid_ones_kept(tmp_path, capsys):
    root = tmp_path / "data"
    records = make_records(6, groups=3)
    root.mkdir()
    cases = bad_lines(root)
    path = write_dataset(root, records, [line for line, _ in cases])
    bad_bytes = "\xff\xfe".encode("latin-1") + b'{"id": "binary"}'
    with path.open("ab") as handle:
        handle.write(bad_bytes + b"\n")

    report = validate_chains(path)
    assert report.valid == len(records)
    assert report.rejected == len(cases) + 1
    first_line = len(records) + 1
    by_line = {e.line: e for e in report.errors}
    for offset, (_, field) in enumerate(cases):
        err = by_line[first_line + offset]
        assert err.field == field, (offset, str(err))
        assert str(err).startswith(f"{path}:{first_line + offset}: {field}: ")
    assert by_line[first_line + len(cases)].message.startswith("not valid UTF-8")
    quarantined = report.quarantine.read_bytes().splitlines()
    assert quarantined[: len(cases)] == [line.encode() for line, _ in cases]
    assert quarantined[-1] == bad_bytes

    # the CLI prints one line per problem, then the counts, and exits 0 unless --strict
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert f"{len(records)} valid, {len(cases) + 1} quarantined" in out.out
    assert "Traceback" not in out.err and f"{path}:{first_line}: (line): invalid JSON" in out.err
    assert main(["validate", str(path), "--strict"]) == 1


def test_nothing_valid_exits_non_zero(tmp_path, capsys):
    path = tmp_path / "chains.jsonl"
    path.write_text("nonsense\n")
    assert main(["validate", str(path)]) == 1


def test_clean_file_removes_stale_quarantine(tmp_path):
    path = write_dataset(tmp_path, make_records(3))
    stale = path.with_name("chains.quarantine.jsonl")
    stale.write_text("old\n")
    report = validate_chains(path)
    assert report.rejected == 0 and not stale.exists()


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    from PIL import Image

    from fakeinstruct.errors import FakeChainError
    from fakeinstruct.images import ImageLimits, check_image

    Image.new("L", (4000, 4000)).save(tmp_path / "big.png")
    try:
        check_image(tmp_path, "big.png", ImageLimits(max_pixels=1_000_000))
    except FakeChainError as err:
        assert "over the limit" in err.message
    else:
        raise AssertionError("a 16-megapixel image passed a 1-megapixel limit")
