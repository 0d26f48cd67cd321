"""Training data for SFT: a FakeInstruct folder or any ``datasets`` source, reduced to the columns TRL trains on.

A local folder written by ``fakeinstruct generate`` is read with :func:`fakeinstruct.loading.load_fakeinstruct`,
which resolves its relative image paths (or decodes embedded images), so rows arrive as TRL's conversational
vision rows: ``messages`` plus ``images`` as PIL images. Anything else (a Hub dataset id, a folder of Parquet
files) goes through ``datasets.load_dataset`` as it is. FakeInstruct's metadata columns (task, label, answer
words ...) are used for the optional task filter, then dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from fakeinstruct.loading import CONFIG_FILE, load_fakeinstruct

logger = logging.getLogger(__name__)

# The columns TRL's SFTTrainer reads for conversational, prompt-completion and vision rows. TRL also takes a single
# ``image`` column, but FakeInstruct's ``image`` is the image's relative path (metadata) next to ``images``, and
# TRL's collator would let it replace ``images``: ``image`` is kept only where there is no ``images`` column.
TRL_COLUMNS = ("messages", "prompt", "completion", "images")
SINGLE_IMAGE_COLUMN = "image"
TASK_COLUMN = "task"


def is_fakeinstruct_folder(name: str | Path) -> bool:
    return (Path(name) / CONFIG_FILE).is_file()


def load_splits(name: str, config: str | None = None):
    """All splits of ``name`` as a ``DatasetDict``: a FakeInstruct folder, a local dataset folder or a Hub id."""
    if is_fakeinstruct_folder(name):
        logger.info("loading FakeInstruct folder %s", name)
        return load_fakeinstruct(name)
    from datasets import load_dataset

    logger.info("loading dataset %s%s with datasets.load_dataset", name, f" ({config})" if config else "")
    return load_dataset(name, name=config)


def prepare_split(
    dataset,
    *,
    tasks: Sequence[str] | None = None,
    max_samples: int | None = None,
    seed: int = 0,
):
    """Keep the rows of ``tasks`` (FakeInstruct task families), at most ``max_samples`` of them drawn with
    ``seed``, and only the columns in :data:`TRL_COLUMNS`."""
    if tasks:
        if TASK_COLUMN not in dataset.column_names:
            raise ValueError(f"dataset_tasks was given but the dataset has no {TASK_COLUMN!r} column")
        wanted = set(tasks)
        unknown = wanted - set(dataset.unique(TASK_COLUMN))
        if unknown:
            raise ValueError(
                f"no rows for task(s) {sorted(unknown)}; the dataset has {sorted(dataset.unique('task'))}"
            )
        dataset = dataset.filter(lambda task: task in wanted, input_columns=TASK_COLUMN, desc="select tasks")
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_samples))
    keep = [c for c in dataset.column_names if c in TRL_COLUMNS]
    if "images" not in keep and SINGLE_IMAGE_COLUMN in dataset.column_names:
        keep.append(SINGLE_IMAGE_COLUMN)
    if not keep:
        raise ValueError(f"no trainable column in {dataset.column_names}; expected some of {list(TRL_COLUMNS)}")
    return dataset.select_columns(keep)


def load_sft_datasets(
    name: str,
    *,
    config: str | None = None,
    train_split: str = "train",
    test_split: str | None = None,
    tasks: Sequence[str] | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 0,
):
    """The train split and, when ``test_split`` is given, the eval split, each passed through :func:`prepare_split`."""
    splits = load_splits(name, config)
    for split in (train_split, test_split):
        if split is not None and split not in splits:
            raise ValueError(f"{name} has no split {split!r}; it has {sorted(splits)}")
    train = prepare_split(splits[train_split], tasks=tasks, max_samples=max_train_samples, seed=seed)
    test = None
    if test_split is not None:
        test = prepare_split(splits[test_split], tasks=tasks, max_samples=max_eval_samples, seed=seed)
    logger.info("train: %d rows from %r; eval: %s", len(train), train_split, len(test) if test is not None else "none")
    return train, test
