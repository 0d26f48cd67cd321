import pytest

from fakeinstruct.generation.splits import assign_splits, parse_ratios

RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def test_groups_and_shared_images_never_straddle_splits():
    records = [(f"r{i}", f"img{i}", f"photo{i % 7}") for i in range(70)]
    records.append(("dup-annotation", "img3", "some-other-group"))  # shares an image with r3
    split = assign_splits(records, RATIOS, seed=1)
    by_group = {}
    for rid, _image, group in records:
        by_group.setdefault(group, set()).add(split[rid])
    assert all(len(s) == 1 for g, s in by_group.items() if g != "some-other-group")
    assert split["dup-annotation"] == split["r3"]


def test_ratios_are_approached_and_order_does_not_matter():
    records = [(f"r{i}", f"img{i}", f"g{i // 4}") for i in range(400)]
    split = assign_splits(records, RATIOS, seed=0)
    counts = {s: list(split.values()).count(s) for s in RATIOS}
    assert abs(counts["train"] - 320) <= 4 and abs(counts["test"] - 40) <= 4
    assert assign_splits(list(reversed(records)), RATIOS, seed=0) == split
    assert assign_splits(records, RATIOS, seed=1) != split


def test_zero_ratio_split_stays_empty():
    split = assign_splits(
        [(f"r{i}", f"i{i}", f"g{i}") for i in range(20)], {"train": 0.5, "validation": 0.0, "test": 0.5}
    )
    assert "validation" not in split.values()


@pytest.mark.parametrize("text", ["0.8,0.2", "0.5,0.5,0.5", "a,b,c", "-0.1,0.6,0.5"])
def test_bad_ratios(text):
    with pytest.raises(ValueError, match="ratios"):
        parse_ratios(text)
