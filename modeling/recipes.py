"""The argument parser of every ``scripts/*.py`` stage: dataclass fields from a YAML recipe and the command line.

TRL's ``TrlParser`` reads ``--config recipe.yaml`` before parsing, so argparse never declares it and ``--help`` does
not show it; :func:`recipe_parser` says it in the usage and keeps TRL's conventions (``--output_dir`` or
``--output-dir``, defaults in ``--help``, the script's docstring as its description with its examples as written).
"""

from __future__ import annotations

CONFIG_HELP = (
    "--config RECIPE.yaml   read the options from a YAML recipe (its keys are the option names above); options\n"
    "                       given on the command line override it"
)


def recipe_parser(dataclass_types, doc: str):
    """A ``TrlParser`` for ``dataclass_types`` whose help shows ``doc`` and the ``--config`` option."""
    from trl import TrlParser

    from fakeinstruct.arguments import HelpFormatter

    parser = TrlParser(dataclass_types, description=doc.strip(), epilog=CONFIG_HELP, formatter_class=HelpFormatter)
    parser.usage = parser.format_usage().removeprefix("usage: ").rstrip() + " [--config RECIPE.yaml]"
    return parser
