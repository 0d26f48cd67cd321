"""Command-line options derived from config dataclasses, with the conventions of ``HfArgumentParser``/``TrlParser``.

Every field becomes ``--field_name``, also accepted as ``--field-name``; its help comes from the field's metadata
and ``--help`` shows its default. A boolean that defaults to true is turned off with ``--no_<name>``. Metadata keys
besides ``help``: ``flags`` (the option's own names instead of ``--<name>``), ``positional``, ``choices``,
``parse`` (a function of the text), ``append`` (repeatable, collected in a list), ``metavar``, ``default_text``
(how ``--help`` shows the default) and ``cli=False`` (not an option).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

_MISSING = dataclasses.MISSING


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples stay examples); each option's default after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or default is False or default == argparse.SUPPRESS:
            return text
        if not action.option_strings:
            return text
        if isinstance(action, argparse._StoreFalseAction):
            return text
        return text + " (default: %(default)s)"


def both_spellings(*flags: str) -> list[str]:
    """``--output_dir`` -> ``["--output_dir", "--output-dir"]``: TRL's scripts take either."""
    out: list[str] = []
    for flag in flags:
        names = [flag]
        if flag.startswith("--"):
            names += ["--" + flag[2:].replace("_", "-"), "--" + flag[2:].replace("-", "_")]
        for name in names:
            if name not in out:
                out.append(name)
    return out


def _base_type(annotation) -> Any:
    """``int | None`` -> int, ``list[str] | None`` -> list; strings (postponed annotations) are resolved first."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    return origin or annotation


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, *, exclude: tuple[str, ...] = ()) -> None:
    """Add an option (or a positional argument) for every field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if field.name in exclude or meta.get("cli", True) is False:
            continue
        default = field.default if field.default is not _MISSING else _MISSING
        if field.default_factory is not _MISSING:
            default = field.default_factory()
        kind = _base_type(hints[field.name])
        kwargs: dict[str, Any] = {"help": meta.get("help", ""), "dest": field.name}
        if meta.get("positional"):
            parser.add_argument(
                field.name, help=kwargs["help"], type=meta.get("parse", str), metavar=meta.get("metavar")
            )
            continue
        if kind is bool:
            if default is True:
                flags = both_spellings(*meta.get("flags", [f"--no_{field.name}"]))
                parser.add_argument(*flags, action="store_false", **kwargs)
            else:
                flags = both_spellings(*meta.get("flags", [f"--{field.name}"]))
                parser.add_argument(*flags, action="store_true", **kwargs)
            continue
        flags = both_spellings(*meta.get("flags", [f"--{field.name}"]))
        if default is _MISSING:
            kwargs["required"] = True
        else:
            # a default shown as text goes through ``parse`` like any text given: argparse parses string defaults
            kwargs["default"] = meta.get("default_text", default)
        if meta.get("append"):
            kwargs["action"] = "append"
            kwargs["default"] = None
        kwargs["type"] = meta.get("parse") or (kind if kind in (int, float) else str)
        for key in ("choices", "metavar"):
            if key in meta:
                kwargs[key] = meta[key]
        parser.add_argument(*flags, **kwargs)


def dataclass_from_args(cls, args: argparse.Namespace, **overrides):
    """Build ``cls`` from parsed ``args`` (fields the parser did not set keep their defaults)."""
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in overrides:
            values[field.name] = overrides[field.name]
        elif hasattr(args, field.name):
            value = getattr(args, field.name)
            if field.metadata.get("append") and value is None:
                continue
            values[field.name] = value
    return cls(**values)
