"""``fakeinstruct generate``, ``stats`` and ``templates``: FakeInstruct from FakeChain, its quality, its templates."""

from __future__ import annotations

from fakeinstruct.arguments import HelpFormatter, add_dataclass_arguments, both_spellings, dataclass_from_args

GENERATE_EXAMPLES = """\
examples:
  fakeinstruct generate data/chains.jsonl --out data/fakeinstruct --workers 8
  fakeinstruct generate data/chains.jsonl --out data/fakeinstruct-embed --images embed
  fakeinstruct generate data/chains.jsonl --out data/llava --format llava --file_format jsonl
"""


def _cmd_generate(args) -> int:
    from fakeinstruct.generation.config import GenerateConfig
    from fakeinstruct.generation.run import generate

    result = generate(dataclass_from_args(GenerateConfig, args))
    print(f"{result.pairs} pairs from {result.records} records ({result.rejected} rejected) -> {result.out}")
    if result.template_failures:
        print(f"  {result.template_failures} pairs left out: their template failed on their record (see stats.json)")
    for task, n in result.stats["per_task"].items():
        print(f"  {task:<12} {n:>8}")
    return 0


def _cmd_stats(args) -> int:
    from fakeinstruct.folder import FakeInstructFolder
    from fakeinstruct.report import write_report

    quality = write_report(args.dir, sample_size=args.sample_size)
    for name, ok in quality["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    failed = [name for name, ok in quality["checks"].items() if not ok]
    print(f"{args.dir}: {quality['pairs']} pairs; {len(failed)} of {len(quality['checks'])} checks failed")
    stats = FakeInstructFolder.open(args.dir).stats()
    from fakeinstruct.report.card import review_lines

    for line in review_lines(stats.get("records", {})):
        print(f"  {line}")
    left_out = stats.get("template_failures", {}).get("pairs", 0)  # folders written before it was reported lack it
    if left_out:
        print(f"  note: {left_out} pairs were left out at generation, their template failing on their record")
    return 1 if failed and args.strict else 0


def _cmd_templates(args) -> int:
    from fakeinstruct.templating.probes import check_registry
    from fakeinstruct.templating.registry import load_registry

    registry = load_registry(args.dirs, builtin=args.builtin)
    if args.action == "check":
        renders = check_registry(registry)
        print(f"{len(registry)} templates OK ({renders} probe renders)")
        return 0
    for t in registry:
        print(f"{t.name:<40} {t.family:<12} {t.kind:<17} {t.phrasing_count():>3} questions  {t.pack}")
    print(f"{len(registry)} templates")
    return 0


def add_commands(sub) -> None:
    from fakeinstruct.generation.config import GenerateConfig

    p = sub.add_parser(
        "generate",
        help="expand FakeChain records into FakeInstruct pairs",
        description="Validate the chains, split them without leakage and write instruction pairs as shards, "
        "with stats.json, fakeinstruct_config.json and a dataset card.",
        epilog=GENERATE_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_dataclass_arguments(p, GenerateConfig)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser(
        "stats",
        help="data-quality report of a generated folder",
        description="Counts, answer-word balance, diversity, duplicates and split leakage of a generated folder; "
        "updates stats.json and the dataset card and draws stats.png.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("dir", help="a fakeinstruct generate output folder")
    p.add_argument(
        *both_spellings("--sample_size"), type=int, default=20_000, help="answers sampled for n-gram diversity"
    )
    p.add_argument("--strict", action="store_true", help="exit non-zero when a quality check fails")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser(
        "templates",
        help="list or check instruction templates",
        description="List the templates, or check them: load, compile and render every phrasing on probe records.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("action", choices=["list", "check"])
    p.add_argument("dirs", nargs="*", help="extra template folders")
    p.add_argument(
        *both_spellings("--no_builtin"),
        dest="builtin",
        action="store_false",
        help="only the given folders and installed packs",
    )
    p.set_defaults(func=_cmd_templates)
