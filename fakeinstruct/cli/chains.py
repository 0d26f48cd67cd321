"""``fakeinstruct schema``, ``validate`` and ``taxonomy``: the FakeChain record and its checks."""

from __future__ import annotations

import json
import sys

from fakeinstruct.arguments import HelpFormatter, both_spellings

SCHEMAS = ("fakechain", "template", "taxonomy", "phrases")


def _cmd_schema(args) -> int:
    if args.what == "template":
        from fakeinstruct.templating.spec import TemplateSpec

        schema = TemplateSpec.model_json_schema()
    elif args.what == "phrases":
        from fakeinstruct.importers.phrases import PhrasesSpec

        schema = PhrasesSpec.model_json_schema()
    elif args.what == "taxonomy":
        from fakeinstruct.chain.taxonomy import TaxonomySpec

        schema = TaxonomySpec.model_json_schema()
    else:
        from fakeinstruct.chain import json_schema

        schema = json_schema()
    text = json.dumps(schema, indent=2) + "\n"
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
        check_images=args.check_images,
    )
    for err in report.errors:
        print(err, file=sys.stderr)
    where = f"; rejected lines written to {report.quarantine}" if report.quarantine else ""
    print(f"{report.path}: {report.valid} valid, {report.rejected} quarantined{where}")
    if report.valid == 0 or (args.strict and report.rejected):
        return 1
    return 0


def _cmd_taxonomy(args) -> int:
    from fakeinstruct.chain.taxonomy import load_taxonomy

    for spec in load_taxonomy(args.taxonomy):
        print(f"{spec.name:<20} {spec.description}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of a FakeChain record, a template, taxonomy or phrases file",
        description="Print the JSON Schema of a FakeChain record (default), a template file, a taxonomy file or a "
        "phrases file (fakeinstruct import --phrases).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("what", nargs="?", default="fakechain", choices=SCHEMAS, help="which schema")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser(
        "validate",
        help="check a FakeChain JSONL file and its images",
        description="Check every record and its image; print each problem as file:line: field: message and write "
        "rejected lines to a quarantine file. Exits non-zero only with --strict or when no valid record remains.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("chains", help="FakeChain JSONL file")
    p.add_argument("--root", help="dataset root that image paths are relative to (default: the file's folder)")
    p.add_argument("--quarantine", help="where rejected lines go (default: <chains>.quarantine.jsonl)")
    p.add_argument("--taxonomy", help="YAML file extending the attribute taxonomy")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any line is rejected")
    p.add_argument(
        *both_spellings("--no_check_images"), dest="check_images", action="store_false", help="skip opening the images"
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "taxonomy",
        help="list the forgery attributes",
        description="List the forgery attributes.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--taxonomy", help="YAML file extending the attribute taxonomy")
    p.set_defaults(func=_cmd_taxonomy)
