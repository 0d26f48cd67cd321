"""One command-line convention: options from dataclass fields, both spellings, defaults in --help."""

import argparse
from dataclasses import dataclass, field

import pytest

from fakeinstruct.arguments import HelpFormatter, add_dataclass_arguments, dataclass_from_args
from fakeinstruct.cli import build_parser, main
from fakeinstruct.generation import GenerateConfig


@dataclass
class Example:
    source: str = field(metadata={"positional": True, "help": "input"})
    output_dir: str = field(metadata={"help": "where it goes"})
    batch_size: int = field(default=16, metadata={"help": "rows per batch"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})
    names: list[str] = field(default_factory=list, metadata={"flags": ["--name"], "append": True, "help": "a name"})


def parse(argv):
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_dataclass_arguments(parser, Example)
    return dataclass_from_args(Example, parser.parse_args(argv)), parser


@pytest.mark.parametrize("spelling", ["--output_dir", "--output-dir"])
def test_both_spellings(spelling):
    example, _ = parse(["in", spelling, "out", "--batch-size", "4", "--no-progress", "--name", "a", "--name", "b"])
    assert example == Example("in", "out", 4, False, ["a", "b"])


def test_defaults_are_the_dataclass_defaults_and_are_shown():
    example, parser = parse(["in", "--output_dir", "out"])
    assert example == Example("in", "out")
    text = " ".join(parser.format_help().split())
    assert "rows per batch (default: 16)" in text and "--output-dir" in text


def test_generate_options_are_generate_config_fields(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["generate", "c.jsonl", "--out", "o", "--shard-size", "7", "--split", "0.5,0.25,0.25"])
    config = dataclass_from_args(GenerateConfig, args)
    assert config.shard_size == 7 and config.split_ratios == {"train": 0.5, "validation": 0.25, "test": 0.25}
    assert dataclass_from_args(GenerateConfig, parser.parse_args(["generate", "c.jsonl", "--out", "o"])) == (
        GenerateConfig(chains="c.jsonl", out="o")
    )


def test_generate_help_shows_defaults_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    raw = capsys.readouterr().out
    text = " ".join(raw.split())  # argparse wraps lines at the terminal width
    assert "(default: 0.8,0.1,0.1)" in text and "(default: parquet)" in text and "(default: 0)" in text
    assert "examples:\n  fakeinstruct generate data/chains.jsonl" in raw


@pytest.mark.parametrize(
    ("what", "title"), [("fakechain", "FakeChain"), ("template", "TemplateSpec"), ("taxonomy", "TaxonomySpec")]
)
def test_schemas(what, title, capsys):
    import json

    assert main(["schema", what]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == title
    assert schema.get("additionalProperties") is False
