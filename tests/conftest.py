"""Shared fixtures: small FakeChain datasets written to tmp dirs, with real PNG files."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakeinstruct.templating.probes import PROBES

# The local Hub endpoint (fixture ``hub_endpoint``) for publishing tests; nothing reaches the real Hub.
pytest_plugins = ["hub_server"]

REPO = Path(__file__).resolve().parents[1]
# The demo's split of the sample (scripts/demo.py): enough authors in the test split for intervals over authors.
DEMO_SPLIT = {"train": 0.5, "validation": 0.15, "test": 0.35}
SAMPLE = REPO / "fakeinstruct" / "data" / "sample"


def write_png(path: Path, seed: int, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_records(n: int, groups: int | None = None) -> list[dict]:
    """``n`` valid records cycling through the probe records, ``groups`` split groups (default: one each)."""
    records = []
    for i in range(n):
        rec = copy.deepcopy(PROBES[i % len(PROBES)])
        rec["id"] = f"rec-{i:04d}"
        rec["image"] = f"images/img-{i:04d}.png"
        rec["source"]["group"] = f"photo-{i % groups if groups else i}"
        records.append(rec)
    return records


def write_dataset(root: Path, records: list[dict], extra_lines: list[str] = ()) -> Path:
    """Write images for ``records`` and a chains.jsonl (records, then ``extra_lines`` verbatim)."""
    root.mkdir(parents=True, exist_ok=True)
    for i, rec in enumerate(records):
        if not (root / rec["image"]).exists():
            write_png(root / rec["image"], seed=i)
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path = root / "chains.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def dataset(tmp_path) -> Path:
    """40 valid records in 12 groups, with their images; returns the chains file."""
    return write_dataset(tmp_path / "data", make_records(40, groups=12))


def run_logged(command: list[str], log: Path, timeout: int = 600) -> str:
    """Run ``command`` from the repository root; return its output, or fail the test with the tail of it."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))  # as the Makefile sets it
    result = subprocess.run(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    log.write_text(result.stdout, encoding="utf-8")
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command[:4])} ... exited with {result.returncode}:\n{result.stdout[-4000:]}")
    return result.stdout


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The offline tiny LLaVA model and processor, built once per test session."""
    from modeling.tiny.llava import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny") / "llava")


@pytest.fixture(scope="session")
def fakeinstruct_dir(tmp_path_factory) -> Path:
    """FakeInstruct from the first 20 sample records, detection family only (60 train, 8 validation rows)."""
    from fakeinstruct.generation import GenerateConfig, generate

    root = tmp_path_factory.mktemp("fakeinstruct")
    chains = root / "chains.jsonl"
    lines = (SAMPLE / "chains.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    chains.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = GenerateConfig(
        chains=str(chains), out=str(root / "data"), root=str(SAMPLE), families=["detection"], progress=False
    )
    return generate(config).out


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """FakeInstruct of the whole sample, every task family, split as the demo splits it (DEMO_SPLIT): 100 train,
    32 validation and 60 test images (5, 4 and 6 authors), half of them fake."""
    from fakeinstruct.generation import GenerateConfig, generate

    out = tmp_path_factory.mktemp("detector") / "data"
    config = GenerateConfig(
        chains=str(SAMPLE / "chains.jsonl"), out=str(out), root=str(SAMPLE), progress=False, split_ratios=DEMO_SPLIT
    )
    return generate(config).out


@pytest.fixture(scope="session")
def calibrated(tiny_model, sample_data, tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the tiny model with a Platt head fitted on the sample's validation split, and its report."""
    from modeling.calibration.fit import CalibrateArguments, calibrate

    model = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(tiny_model, model)
    args = CalibrateArguments(
        model=str(model), data=str(sample_data), method="platt", batch_size=8, cache_dir=str(model.parent / "cache")
    )
    return model, calibrate(args)


@pytest.fixture(scope="session")
def evaluated(calibrated, sample_data, tmp_path_factory):
    """``scripts/evaluate.py`` on the first 48 test turns of the sample with the calibrated tiny model."""
    from modeling.evaluation.run import EvaluateArguments, evaluate

    args = EvaluateArguments(
        model=str(calibrated[0]),
        data=str(sample_data),
        output_dir=str(tmp_path_factory.mktemp("evaluated") / "eval"),
        max_items=48,
        batch_size=8,
        max_new_tokens=8,
        closed_max_new_tokens=4,
    )
    return args, evaluate(args)


ONE_TEMPLATE = (
    "name: detection.one\nfamily: detection\nkind: closed\nfields: [answer]\n"
    "answer_words: {fake: Fake, real: Real}\nquestions: ['Real or fake?']\nanswers: ['{{ answer }}.']\n"
)


def generate_with_one_template(chains: Path, work: Path):
    """``fakeinstruct generate`` to JSONL with a single one-phrasing template: fast, and every pair predictable."""
    from fakeinstruct.generation import GenerateConfig, generate

    templates = work / "templates" / "detection"
    templates.mkdir(parents=True)
    (templates / "one.yaml").write_text(ONE_TEMPLATE, encoding="utf-8")
    config = GenerateConfig(
        chains=str(chains),
        out=str(work / "out"),
        file_format="jsonl",
        template_dirs=[str(work / "templates")],
        builtin_templates=False,
        progress=False,
    )
    return generate(config)


def assert_assistant_only_labels(batch, tokenizer, image_token_id: int, image_tokens: int) -> None:
    """Labels must equal the ids from after ``<|assistant|>\\n`` through the turn's ``</s>``, and be -100 elsewhere,
    on every image token in particular."""
    assistant, eos = tokenizer.convert_tokens_to_ids("<|assistant|>"), tokenizer.eos_token_id
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        expected, inside = [], False
        for i, token in enumerate(ids):
            inside = inside or (i >= 2 and ids[i - 2] == assistant)
            expected.append(token if inside else -100)
            inside = inside and token != eos
        assert labels == expected
        image_labels = [label for token, label in zip(ids, labels, strict=True) if token == image_token_id]
        assert image_labels == [-100] * image_tokens


def masked_runs(ids, mask) -> list[list[int]]:
    """The runs of consecutive token ids where ``mask`` is set (one run per trained answer)."""
    runs, run = [], []
    for token, masked in zip(ids, mask, strict=True):
        if masked:
            run.append(token)
        elif run:
            runs, run = [*runs, run], []
    return [*runs, run] if run else runs
