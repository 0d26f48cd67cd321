"""The SFT splits: a FakeInstruct folder (image paths resolved) or any ``datasets`` source, cut to TRL's columns."""

from __future__ import annotations

import logging
from pathlib import Path

from fakeinstruct.loading import CONFIG_FILE, load_fakeinstruct

logger = logging.getLogger(__name__)

# The columns SFTTrainer reads; TRL also takes a single ``image`` column, kept where there is no ``images`` column.
TRL_COLUMNS = ("messages", "prompt", "completion", "images")


def prepare_split(dataset, tasks: list[str] | None, max_samples: int | None, seed: int):
    """The rows of ``tasks`` (task families), at most ``max_samples`` of them drawn with ``seed``, TRL's columns."""
    if tasks:
        if "task" not in dataset.column_names:
            raise ValueError("dataset_tasks was given but the dataset has no 'task' column")
        wanted, present = set(tasks), set(dataset.unique("task"))
        if wanted - present:
            raise ValueError(f"no rows for task(s) {sorted(wanted - present)}; the dataset has {sorted(present)}")
        dataset = dataset.filter(lambda task: task in wanted, input_columns="task", desc="select tasks")
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_samples))
    keep = [c for c in dataset.column_names if c in TRL_COLUMNS]
    if "images" not in keep and "image" in dataset.column_names:
        keep.append("image")
    if not keep:
        raise ValueError(f"no trainable column in {dataset.column_names}; expected some of {list(TRL_COLUMNS)}")
    return dataset.select_columns(keep)


def load_sft_datasets(args, seed: int = 0, evaluate: bool = True):
    """The train and (when ``evaluate``, else None) test splits of ``args`` (``ScriptArguments``), prepared."""
    if (Path(args.dataset_name) / CONFIG_FILE).is_file():
        splits = load_fakeinstruct(args.dataset_name)
    else:
        from datasets import load_dataset

        splits = load_dataset(args.dataset_name, name=args.dataset_config)
    names = (args.dataset_train_split, args.dataset_test_split if evaluate else None)
    for split in filter(None, names):
        if split not in splits:
            raise ValueError(f"{args.dataset_name} has no split {split!r}; it has {sorted(splits)}")
    train = prepare_split(splits[names[0]], args.dataset_tasks, args.max_train_samples, seed)
    test = prepare_split(splits[names[1]], args.dataset_tasks, args.max_eval_samples, seed) if names[1] else None
    logger.info("train: %d rows from %r; eval: %s", len(train), names[0], len(test) if test is not None else "none")
    return train, test
