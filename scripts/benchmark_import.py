#!/usr/bin/env python
"""Benchmark `fakeinstruct import` at FakeClue's scale, then `fakeinstruct generate` on what it imported.

The input is a FakeClue-layout tree (``data_json/train.json`` and ``train/<category>/<real|fake>/...``) of 104,343
records by default, FakeClue's training set size: every image a hard link to one of the bundled sample's 192 images
(fakes to its fakes, reals to its reals), every record its own id and an explanation drawn by a seeded generator
(a verdict sentence, a description, three or four evidence sentences out of 15 attributes' phrasings, a closing
sentence), and the deepfake category filed as FF++ video frames, ten per video. Then, each as a subprocess, timed
from start to exit, with the summed resident memory of the process and its workers sampled every 100 ms:

- ``import``: ``fakeinstruct import fakeclue ROOT --out ROOT/chains.jsonl --workers N``;
- ``generate``: ``fakeinstruct generate ROOT/chains.jsonl --out OUT --workers N --split-from source.origin``
  (``trl`` format, Parquet, 10,000-row shards, images as relative paths).

As the images are hard links to 192 files, import decodes 192 images (its image check is cached by file identity,
as generate's is): on the real dataset every image is decoded once. ``decode_ms_per_image`` (the sample's images,
measured here) gives that cost. The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark_generate import TreeRss, _children_cpu

from fakeinstruct.arguments import HelpFormatter, both_spellings

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fakeinstruct" / "data" / "sample"
FAKECLUE_TRAIN_RECORDS = 104_343
logger = logging.getLogger("scripts.benchmark_import")

CATEGORIES = ["animal", "human", "object", "scene", "satellite", "doc", "deepfake"]
THINGS = {
    "animal": ["dog", "cat", "horse", "bird", "fox"],
    "human": ["woman", "man", "child", "face", "hand"],
    "object": ["cup", "chair", "car", "lamp", "clock"],
    "scene": ["street", "lake", "forest", "kitchen", "beach"],
    "satellite": ["road network", "field", "roof", "river bank", "parking lot"],
    "doc": ["invoice", "letter", "form", "receipt", "page"],
    "deepfake": ["face", "mouth", "eyes", "hairline", "cheek"],
}
FAKE = {
    "texture": [
        "The texture of the {t} is overly smooth and looks waxy.",
        "Surface textures on the {t} repeat in a way real materials do not, an unnatural pattern.",
        "The {t} has a plastic-like texture.",
    ],
    "edges": [
        "The edges of the {t} carry a faint halo.",
        "Outlines around the {t} look unnaturally hard, as if drawn.",
    ],
    "clarity": [
        "Fine details of the {t} are blurry while its contours stay crisp.",
        "The {t} lacks detail where it should be in focus.",
    ],
    "noise": [
        "Flat areas around the {t} are noise-free, an unnatural smoothness.",
        "The grain is inconsistent between the {t} and the background.",
    ],
    "lighting": [
        "The lighting is inconsistent: shadows of the {t} fall in another direction.",
        "Highlights on the {t} do not match the light source.",
    ],
    "color": [
        "Colors around the {t} are oversaturated.",
        "Color transitions on the {t} look posterized and unnatural.",
    ],
    "layout": [
        "Objects around the {t} are disorganized and oddly placed.",
        "The {t} is misaligned with its surroundings.",
    ],
    "symmetry": ["The two sides of the {t} are mismatched and asymmetric."],
    "reflection": ["The reflection of the {t} shows the wrong content, which is unnatural."],
    "perspective": ["The perspective of the {t} is inconsistent with the rest of the scene."],
    "shape": ["The shape of the {t} is deformed.", "The proportions of the {t} are disproportionate."],
    "text": ["The text near the {t} is garbled and illegible."],
    "content_consistency": ["Parts of the {t} are missing or merged into the background, which is incoherent."],
    "distortion": ["Parts of the {t} are warped and smeared.", "The {t} looks stretched and distorted."],
    "implausibility": [
        "The {t} appears to be floating, which is physically impossible.",
        "The placement of the {t} is illogical.",
    ],
}
REAL = {
    "texture": ["The texture of the {t} is irregular and natural.", "Surface detail on the {t} looks realistic."],
    "edges": [
        "The edges of the {t} are clean, with no halos.",
        "Outlines of the {t} blend naturally into the background.",
    ],
    "clarity": ["Fine details of the {t} are sharp where it is in focus.", "The {t} is crisp and detailed."],
    "noise": ["An even, natural grain covers the flat areas around the {t}."],
    "lighting": [
        "The lighting is consistent, and the shadows of the {t} fall naturally.",
        "Highlights on the {t} match the light source, as expected.",
    ],
    "color": ["Colors of the {t} are natural, with smooth gradients.", "The tones of the {t} look realistic."],
    "layout": ["Objects around the {t} are organized and placed naturally."],
    "perspective": ["The perspective of the {t} is consistent with the scene."],
    "shape": ["The shape of the {t} looks correct and natural."],
    "reflection": ["The reflection of the {t} matches the scene, as expected."],
    "text": ["The text near the {t} is legible and consistent."],
}
OPENERS = ["", "Moreover, ", "In addition, ", "Looking closely, ", "Also, "]
CLOSING = {
    "fake": [
        "These anomalies indicate that the image was generated by AI.",
        "Overall, these artifacts point to a synthetic origin.",
        "Taken together, the flaws suggest an AI-generated image.",
    ],
    "real": [
        "Overall, the image shows no signs of AI generation.",
        "Everything is consistent with a real photograph.",
        "Nothing suggests that the image was generated.",
    ],
}


def explanation(rng: random.Random, label: str, category: str) -> str:
    thing = rng.choice(THINGS[category])
    pool = FAKE if label == "fake" else REAL
    parts = [
        f"This is a {label} image.",
        f"The image shows a {thing} in a {rng.choice(['bright', 'dim', 'busy', 'quiet'])} setting.",
    ]
    for i, name in enumerate(rng.sample(sorted(pool), rng.choice([3, 4]))):
        sentence = rng.choice(pool[name]).format(t=thing)
        opener = rng.choice(OPENERS) if i else ""
        parts.append(opener + (sentence[0].lower() + sentence[1:] if opener else sentence))
    parts.append(rng.choice(CLOSING[label]))
    return " ".join(parts)


def sample_images() -> dict[str, list[Path]]:
    images: dict[str, list[Path]] = {"real": [], "fake": []}
    for line in (SAMPLE / "chains.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        images[record["label"]].append(SAMPLE / record["image"])
    return images


def build_tree(root: Path, records: int, seed: int) -> None:
    """The FakeClue-layout tree (see the module docstring)."""
    rng = random.Random(seed)
    images = sample_images()
    data = []
    for i in range(records):
        label = "fake" if rng.random() < 0.6 else "real"
        category = CATEGORIES[i % len(CATEGORIES)]
        if category == "deepfake":
            folder = "Deepfakes/c23/frames" if label == "fake" else "youtube/c23/frames"
            image = f"ff++/{label}/{folder}/{i // 70:04d}/{i % 70 // 7:03d}.jpg"
        else:
            image = f"{category}/{label}/{i:06d}.jpg"
        src = images[label][i % len(images[label])]
        dst = root / "train" / image
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
        data.append(
            {
                "image": image,
                "label": 0 if label == "fake" else 1,
                "cate": category,
                "width": 112,
                "height": 112,
                "conversations": [
                    {"from": "human", "value": "<image>Does the image looks real/fake?"},
                    {"from": "gpt", "value": explanation(rng, label, category)},
                ],
            }
        )
    (root / "data_json").mkdir(parents=True, exist_ok=True)
    (root / "data_json" / "train.json").write_text(json.dumps(data), encoding="utf-8")


def timed(argv: list[str]) -> tuple[float, int, float, str]:
    """Run ``argv``; return wall seconds, peak summed RSS, CPU seconds of it and its children, and its stdout."""
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeRss(proc.pid)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[2:5])} failed with exit code {proc.returncode}:\n{err[-3000:]}")
    return seconds, peak, _children_cpu() - cpu, out


def decode_ms() -> float:
    from fakeinstruct.images import check_image

    paths = [p.relative_to(SAMPLE).as_posix() for group in sample_images().values() for p in group]
    start = time.perf_counter()
    for path in paths:
        check_image(SAMPLE, path)
    return (time.perf_counter() - start) / len(paths) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=FAKECLUE_TRAIN_RECORDS, help="records in train.json")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for import and generate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the explanations and labels")
    parser.add_argument(
        *both_spellings("--work_dir"), type=Path, help="where the tree and outputs go (default: a temporary folder)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="fakeinstruct-bench-import-") as tmp:
        work = args.work_dir or Path(tmp)
        root, out = work / "FakeClue", work / "fakeinstruct"
        marker = root / f".built-{args.records}-{args.seed}"
        if not marker.exists():
            shutil.rmtree(root, ignore_errors=True)
            logger.info("building a FakeClue tree of %d records under %s", args.records, root)
            start = time.perf_counter()
            build_tree(root, args.records, args.seed)
            marker.touch()
            logger.info("built in %.1f s", time.perf_counter() - start)
        shutil.rmtree(out, ignore_errors=True)
        chains = root / "chains.jsonl"
        cli = [sys.executable, "-m", "fakeinstruct.cli", "-q"]
        load = os.getloadavg()[0]
        workers = ["--workers", str(args.workers), "--no-progress"]
        import_s, import_rss, import_cpu, _ = timed(
            [*cli, "import", "fakeclue", str(root), "--out", str(chains), *workers]
        )
        summary = json.loads((root / "chains.import.json").read_text())
        logger.info("import: %.1f s, %d records, %d rejected", import_s, summary["records"], summary["rejected"])
        generate = [*cli, "generate", str(chains), "--out", str(out), "--split-from", "source.origin", *workers]
        generate_s, generate_rss, generate_cpu, _ = timed(generate)
        stats = json.loads((out / "stats.json").read_text())
        attributes = [len(json.loads(line)["attributes"]) for line in chains.open()]
    result = {
        "records": summary["records"],
        "rejected": summary["rejected"],
        "pairs": stats["pairs"],
        "pairs_per_record": round(stats["pairs"] / summary["records"], 2),
        "attributes_per_record": round(sum(attributes) / len(attributes), 2),
        "import_seconds": round(import_s, 2),
        "import_peak_rss_mb": round(import_rss / 2**20),
        "import_cpu_seconds": round(import_cpu, 2),
        "generate_seconds": round(generate_s, 2),
        "generate_peak_rss_mb": round(generate_rss / 2**20),
        "generate_cpu_seconds": round(generate_cpu, 2),
        "total_seconds": round(import_s + generate_s, 2),
        "peak_rss_mb": round(max(import_rss, generate_rss) / 2**20),
        "per_split": stats["records"]["per_split"],
        "decode_ms_per_image": round(decode_ms(), 3),
        "workers": args.workers,
        "load_before": round(load, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
