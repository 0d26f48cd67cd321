"""The ``fakeinstruct`` command line: schema, validate, generate, templates, draft."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fakeinstruct import __version__
from fakeinstruct.errors import FakeInstructError

logger = logging.getLogger("fakeinstruct")


def _cmd_schema(args) -> int:
    from fakeinstruct.chain import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        from fakeinstruct.files import write_text

        write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_validate(args) -> int:
    from fakeinstruct.chain.taxonomy import load_taxonomy
    from fakeinstruct.chain.validate import validate_chains

    report = validate_chains(
        args.chains,
        root=args.root,
        taxonomy=load_taxonomy(args.taxonomy),
        quarantine=args.quarantine,
        check_images=not args.no_check_images,
    )
    for err in report.errors:
        print(err, file=sys.stderr)
    where = f"; rejected lines written to {report.quarantine}" if report.quarantine else ""
    print(f"{report.path}: {report.valid} valid, {report.rejected} quarantined{where}")
    if report.valid == 0 or (args.strict and report.rejected):
        return 1
    return 0


def _cmd_generate(args) -> int:
    from fakeinstruct.generation.run import GenerateConfig, generate
    from fakeinstruct.generation.splits import parse_ratios

    try:
        ratios = parse_ratios(args.split)
    except ValueError as err:
        raise FakeInstructError(str(err), field="--split") from err
    config = GenerateConfig(
        chains=args.chains,
        out=args.out,
        root=args.root,
        format=args.format,
        file_format=args.file_format,
        images=args.images,
        seed=args.seed,
        workers=args.workers,
        shard_size=args.shard_size,
        split_ratios=ratios,
        families=args.families.split(",") if args.families else None,
        template_dirs=args.templates or [],
        builtin_templates=not args.no_builtin_templates,
        taxonomy=args.taxonomy,
        check_images=not args.no_check_images,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        strict=args.strict,
    )
    result = generate(config)
    print(f"{result.pairs} pairs from {result.records} records ({result.rejected} rejected) -> {result.out}")
    if result.template_failures:
        print(f"  {result.template_failures} pairs left out: their template failed on their record (see stats.json)")
    for task, n in result.stats["per_task"].items():
        print(f"  {task:<12} {n:>8}")
    return 0


def _cmd_stats(args) -> int:
    from fakeinstruct.report import write_report

    quality = write_report(args.dir, sample_size=args.sample_size)
    for name, ok in quality["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    failed = [name for name, ok in quality["checks"].items() if not ok]
    print(f"{args.dir}: {quality['pairs']} pairs; {len(failed)} of {len(quality['checks'])} checks failed")
    stats = json.loads((Path(args.dir) / "stats.json").read_text(encoding="utf-8"))
    left_out = stats.get("template_failures", {}).get("pairs", 0)  # folders written before it was reported lack it
    if left_out:
        print(f"  note: {left_out} pairs were left out at generation, their template failing on their record")
    return 1 if failed and args.strict else 0


def _cmd_templates(args) -> int:
    from fakeinstruct.templating.probes import check_registry
    from fakeinstruct.templating.registry import load_registry

    registry = load_registry(args.dirs, builtin=not args.no_builtin)
    if args.action == "check":
        renders = check_registry(registry)
        print(f"{len(registry)} templates OK ({renders} probe renders)")
        return 0
    for t in registry:
        print(f"{t.name:<40} {t.family:<12} {t.kind:<17} {t.phrasing_count():>3} questions  {t.pack}")
    print(f"{len(registry)} templates")
    return 0


def _cmd_taxonomy(args) -> int:
    from fakeinstruct.chain.taxonomy import load_taxonomy

    for spec in load_taxonomy(args.taxonomy):
        print(f"{spec.name:<20} {spec.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakeinstruct", description="FakeChain -> FakeInstruct instruction data.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "schema", help="print the FakeChain JSON Schema", description="Print the FakeChain JSON Schema."
    )
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser(
        "validate",
        help="check a FakeChain JSONL file and its images",
        description="Check every record and its image; print each problem as file:line: field: message and write "
        "rejected lines to a quarantine file. Exits non-zero only with --strict or when no valid record remains.",
    )
    p.add_argument("chains", help="FakeChain JSONL file")
    p.add_argument("--root", help="dataset root that image paths are relative to (default: the file's folder)")
    p.add_argument("--quarantine", help="where rejected lines go (default: <chains>.quarantine.jsonl)")
    p.add_argument("--taxonomy", help="YAML file extending the attribute taxonomy")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any line is rejected")
    p.add_argument("--no-check-images", action="store_true", help="skip opening the images")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "generate",
        help="expand FakeChain records into FakeInstruct pairs",
        description="Validate the chains, split them without leakage and write instruction pairs as shards, "
        "with stats.json, fakeinstruct_config.json and a dataset card.",
    )
    p.add_argument("chains", help="FakeChain JSONL file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--root", help="dataset root that image paths are relative to (default: the file's folder)")
    p.add_argument("--format", default="trl", choices=["trl", "prompt-completion", "llava"], help="row layout")
    p.add_argument("--file-format", default="parquet", choices=["parquet", "jsonl"], help="shard file type")
    p.add_argument(
        "--images",
        default="relative",
        choices=["relative", "embed"],
        help="store image paths once, or embed bytes in rows",
    )
    p.add_argument("--seed", type=int, default=0, help="global seed for phrasing choices and splits")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output is identical for any number)")
    p.add_argument("--shard-size", type=int, default=10_000, help="rows per shard")
    p.add_argument("--split", default="0.8,0.1,0.1", help="train,validation,test ratios")
    p.add_argument("--families", help="comma-separated task families (default: all)")
    p.add_argument("--templates", action="append", help="extra template folder (repeatable)")
    p.add_argument(
        "--no-builtin-templates", action="store_true", help="use only --templates folders and installed packs"
    )
    p.add_argument("--taxonomy", help="YAML file extending the attribute taxonomy")
    p.add_argument("--no-check-images", action="store_true", help="skip opening the images")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output in --out")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first template that fails on a record (default: leave that pair out, report it, go on)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser(
        "stats",
        help="data-quality report of a generated folder",
        description="Counts, answer-word balance, diversity, duplicates and split leakage of a generated folder; "
        "updates stats.json and the dataset card and draws stats.png.",
    )
    p.add_argument("dir", help="a fakeinstruct generate output folder")
    p.add_argument("--sample-size", type=int, default=20_000, help="answers sampled for n-gram diversity")
    p.add_argument("--strict", action="store_true", help="exit non-zero when a quality check fails")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("templates", help="list or check instruction templates", description="List or check templates.")
    p.add_argument("action", choices=["list", "check"])
    p.add_argument("dirs", nargs="*", help="extra template folders")
    p.add_argument("--no-builtin", action="store_true", help="only the given folders and installed packs")
    p.set_defaults(func=_cmd_templates)

    p = sub.add_parser("taxonomy", help="list the forgery attributes", description="List the forgery attributes.")
    p.add_argument("--taxonomy", help="YAML file extending the attribute taxonomy")
    p.set_defaults(func=_cmd_taxonomy)

    from fakeinstruct.drafting.draft import add_cli

    add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except FakeInstructError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
