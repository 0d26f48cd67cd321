"""The ``fakeinstruct`` command: one subcommand per stage of the data side (see ``fakeinstruct --help``)."""

from __future__ import annotations

import argparse
import logging
import sys

from fakeinstruct import __version__
from fakeinstruct.arguments import HelpFormatter
from fakeinstruct.errors import FakeInstructError
from fakeinstruct.logs import setup_logging

logger = logging.getLogger("fakeinstruct")


def build_parser() -> argparse.ArgumentParser:
    from fakeinstruct.cli import chains, draft, generate, importing, review

    parser = argparse.ArgumentParser(
        prog="fakeinstruct", description="FakeChain -> FakeInstruct instruction data.", formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (chains, generate, draft, review, importing):
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet, fmt="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except FakeInstructError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a write no stage turned into its own error: disk full, read-only, permissions
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
