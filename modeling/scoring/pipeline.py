"""``fakescope detect`` over a collection: a ``DataLoader`` feeding the model, rows written resumably, any number of
processes.

Workers decode and resize (:mod:`modeling.scoring.preprocessing`) while the model scores the previous batch; each
batch goes through the estimator's one forward pass per question (:meth:`TokenProbabilityEstimator.score_inputs`)
and the detector's verdicts (:meth:`FakeScopeDetector.verdicts`), the code ``FakeScopeDetector.__call__`` runs, so
the rows agree with it image by image. Rows go to a :class:`~modeling.scoring.results.ResultStore`, or to a callback.

Several processes (``accelerate launch`` or ``torchrun``; :meth:`Processes.from_environment`): process ``r`` of
``W`` scores the images at input positions ``r, r + W, ...`` that are not scored yet and writes its own parts; after a
barrier, process 0 merges them in input order.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from modeling.scoring.collection import Collection
from modeling.scoring.preprocessing import BatchEncoder, Collate

logger = logging.getLogger(__name__)


@dataclass
class Processes:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    world: int = 1
    device: str | None = None
    barrier: Callable[[], None] = field(default=lambda: None, repr=False)

    @classmethod
    def from_environment(cls, device: str | None = None) -> Processes:
        """One process, or (under ``accelerate launch`` / ``torchrun``: ``WORLD_SIZE`` > 1) accelerate's process
        group: gloo on CPU, NCCL with one GPU per process."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls(device=device)
        from accelerate import PartialState

        cpu = device == "cpu" or (device is None and not torch.cuda.is_available())
        state = PartialState(cpu=cpu)
        return cls(state.process_index, state.num_processes, str(state.device), state.wait_for_everyone)


@dataclass
class Summary:
    """What one process did: images in the inputs, already scored before, scored now, unreadable now, seconds."""

    total: int
    skipped: int
    scored: int
    failed: int
    seconds: float
    rows: int | None = None  # rows in the merged output (process 0, with an output)
    waited: float = 0.0  # seconds the model waited for the loader (decoding, resizing) after the first batch

    @property
    def images_per_s(self) -> float:
        return (self.scored + self.failed) / self.seconds if self.seconds > 0 else 0.0


def scoring_threads(num_workers: int, world: int = 1) -> int:
    """Torch threads for a scoring process on CPU: the cores left to it after its loader workers, at least one.

    Intra-op threads that share cores with the loader workers (or other processes) wait on each other at every
    operation; on 2 cores a tiny model's forward pass is several times slower with 2 threads than with 1.
    """
    return max(1, (os.cpu_count() or 1) // max(1, world) - num_workers)


def run_info(detector, attributes: bool, explain: bool) -> dict:
    """What produced a score file: the weights and head it came from, the questions and options."""
    from modeling.scoring.split_scores import weights_fingerprint

    config, source = detector.config, detector.source
    head = Path(source) / "calibration" if source is not None and detector.calibration is not None else None
    return {
        "weights": weights_fingerprint(source),
        "calibration": weights_fingerprint(head) if head is not None else None,
        "detection": asdict(config.detection),
        "threshold": config.threshold,
        "attributes": {name: asdict(q) for name, q in config.attributes.items()} if attributes else None,
        "explanation": {"question": config.explanation, "max_new_tokens": config.max_new_tokens} if explain else None,
    }


class ImageItems(torch.utils.data.Dataset):
    """The images at ``positions`` of a collection, prepared by ``prepare`` (in the loader's workers)."""

    def __init__(self, collection: Collection, positions: list[int], prepare):
        self.collection, self.positions, self.prepare = collection, positions, prepare

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int):
        position = self.positions[j]
        try:
            return position, self.prepare(self.collection.load(position)), None
        except Exception as err:  # any unreadable image becomes its row's error, as with on_error="report"
            return position, None, str(err) or type(err).__name__


def make_loader(
    dataset: ImageItems, batch_size: int, num_workers: int, collate: Collate | None = None, pin_memory: bool = False
):
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate or Collate(),
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
    )


class BatchScorer:
    """Rows for one loader batch: the detection verdicts, and per-attribute scores and explanations when asked."""

    def __init__(self, detector, encoder: BatchEncoder, attributes: bool = False, explain: bool = False):
        from modeling.scoring.probability import prompt_text

        self.detector, self.encoder, self.estimator = detector, encoder, detector.estimator
        config, processor = detector.config, detector.processor
        self.detection = (prompt_text(processor, config.detection.question), self.estimator.plan(config.detection))
        self.attributes = (
            {
                name: (prompt_text(processor, q.question), self.estimator.plan(q))
                for name, q in config.attributes.items()
            }
            if attributes
            else None
        )
        self.explanation = prompt_text(processor, config.explanation) if explain else None

    def _logit(self, pixels, prompt_and_plan) -> np.ndarray:
        prompt, plan = prompt_and_plan
        from modeling.scoring.probability import require_finite

        pos, neg = self.estimator.score_inputs(self.encoder.inputs(pixels, prompt), plan)
        return require_finite(pos - neg)

    def rows(self, batch: dict, keys: list[str]) -> list[dict]:
        from modeling.scoring.generation import generate_from_inputs
        from modeling.scoring.probability import _sigmoid

        by_position = {p: {"path": keys[p], "error": error} for p, error in batch["errors"].items()}
        if batch["positions"]:
            pixels = self.encoder.pixels(batch["data"])
            logit = self._logit(pixels, self.detection)
            results = self.detector.verdicts(logit, _sigmoid(logit))
            if self.attributes is not None:
                for result in results:
                    result["attributes"] = {}
                for name, prompt_and_plan in self.attributes.items():
                    for result, p in zip(results, _sigmoid(self._logit(pixels, prompt_and_plan)), strict=True):
                        result["attributes"][name] = float(p)
            if self.explanation is not None:
                inputs = self.encoder.inputs(pixels, self.explanation)
                texts = generate_from_inputs(self.estimator, inputs, self.detector.config.max_new_tokens)
                for result, text in zip(results, texts, strict=True):
                    result["explanation"] = text
            for position, result in zip(batch["positions"], results, strict=True):
                by_position[position] = {"path": keys[position], **result}
        return [by_position[p] for p in batch["order"]]


def detect_collection(
    detector,
    collection: Collection,
    *,
    output: str | Path | None = None,
    on_rows: Callable[[list[dict]], None] | None = None,
    attributes: bool = False,
    explain: bool = False,
    num_workers: int = 2,
    save_every: int = 1024,
    save_seconds: float = 30.0,
    overwrite: bool = False,
    progress: bool = True,
    processes: Processes | None = None,
    split_preprocessing: bool = True,
    threads: int | None = None,
) -> Summary:
    """Score every image of ``collection`` (this process's share of it), rows to ``output`` and/or ``on_rows``.

    On CPU, torch runs ``threads`` intra-op threads meanwhile (default :func:`scoring_threads`); the setting before
    is restored at the end."""
    from tqdm.auto import tqdm

    from modeling.scoring.results import ResultStore, row_schema

    processes = processes or Processes()
    rank, world = processes.rank, processes.world
    if world > 1 and output is None:
        raise ValueError("several processes need an output file to merge into (--output)")
    keys = [ref.key for ref in collection.refs]
    store = None
    if output is not None:
        names = list(detector.config.attributes) if attributes else None
        store = ResultStore(
            output,
            run_info(detector, attributes, explain),
            row_schema(names, explain),
            rank=rank,
            save_every=save_every,
            save_seconds=save_seconds,
        )
        if rank == 0:
            store.prepare(overwrite)
        processes.barrier()
    done = store.done() if store is not None else set()
    mine = [i for i in range(len(keys)) if i % world == rank]
    positions = [i for i in mine if keys[i] not in done]
    skipped = len(mine) - len(positions)
    if skipped:
        logger.info("rank %d: %d of %d image(s) already scored in %s", rank, skipped, len(mine), output)
    encoder = BatchEncoder.cached(detector.estimator, split=split_preprocessing)
    scorer = BatchScorer(detector, encoder, attributes, explain)
    pin = detector.model.device.type == "cuda"
    items = ImageItems(collection, positions, encoder.prepare)
    loader = make_loader(items, detector.batch_size, num_workers, encoder.collate, pin)
    scored = failed = 0
    previous_threads = torch.get_num_threads()
    if detector.model.device.type == "cpu":
        torch.set_num_threads(threads or scoring_threads(num_workers, world))
    start = time.perf_counter()
    desc = "detect" if world == 1 else f"detect [rank 0 of {world}]"
    bar = tqdm(total=len(positions), desc=desc, unit="img", disable=not progress or rank != 0 or not positions)
    waited, batches = 0.0, iter(loader)
    try:
        while True:
            before = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            if scored + failed:  # the first batch waits for the workers to start: not a wait on PIL
                waited += time.perf_counter() - before
            rows = scorer.rows(batch, keys)
            failed += len(batch["errors"])
            scored += len(batch["positions"])
            if store is not None:
                store.add(rows)
            if on_rows is not None:
                on_rows(rows)
            bar.update(len(rows))
    finally:
        bar.close()
        torch.set_num_threads(previous_threads)
        if store is not None:
            store.save()  # what was scored is kept, also when scoring failed
    seconds = time.perf_counter() - start
    summary = Summary(len(keys), skipped, scored, failed, seconds, waited=waited)
    logger.info(
        "%s%d image(s) at %.1f images/s; the model waited %.1f %% of the time for the loader",
        f"process {rank} of {world}: " if world > 1 else "",
        scored,
        summary.images_per_s,
        100 * waited / seconds if seconds else 0.0,
    )
    if store is not None:
        processes.barrier()
        if rank == 0:
            summary.rows = store.finish(keys)
    return summary
