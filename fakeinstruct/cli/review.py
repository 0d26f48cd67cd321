"""``fakeinstruct review``: blind human review of machine drafts, in the terminal or from a decisions file.

The terminal flow shows one draft at a time: a copy of its image under an opaque name and its per-attribute
evidence, never its id, label or source. Single keys accept, toggle, edit or flag; the reviewer then makes their own
real/fake call. Each decision is appended to ``<out>.decisions.jsonl`` as it is made, so a session can stop and
resume; when every draft is decided the reviewed records are written to ``--out``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fakeinstruct.arguments import HelpFormatter, both_spellings
from fakeinstruct.errors import FakeInstructError

KEYS = (
    "Enter: accept | N: toggle verdict of attribute N | eN: new evidence | sN 0.6: severity | "
    "rN x0 y0 x1 y1: region | d: describe the image | f: flag | q: stop (decisions so far are kept)"
)
EXAMPLES = """\
examples:
  fakeinstruct review drafts.jsonl --root data --out chains.jsonl --reviewer "A. Reviewer"
  fakeinstruct review drafts.jsonl --root data --packet review-packet          # for reviewers elsewhere
  fakeinstruct review drafts.jsonl --root data --decisions decisions.jsonl --key review-packet.key.json \\
      --out chains.jsonl
"""


class _Stop(Exception):
    pass


def _ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError as err:  # stdin ran out: stop like "q"
        raise _Stop from err


def _show(index: int, total: int, image: Path, attributes: list[dict]) -> None:
    from PIL import Image

    with Image.open(image) as img:
        size = f"{img.width}x{img.height}"
    print(f"\n[{index}/{total}] image: {image} ({size})")
    for number, a in enumerate(attributes, start=1):
        severity = f" {a['severity']:.2f}" if a.get("severity") is not None else ""
        region = f" at {a['region']}" if a.get("region") else ""
        print(f"  {number}. {a['name']:<12} {a['verdict']}{severity}{region}: {a['evidence']}")
    print(f"  keys: {KEYS}")


def _review_one(attributes: list[dict], reviewer: str) -> dict:
    """Commands on one draft until Enter; then the reviewer's call. Returns the decision (without its id)."""
    changes: dict[str, dict] = {}
    summary, flags = None, []

    def attribute(token: str) -> dict:
        number = int(token)
        if not 1 <= number <= len(attributes):
            raise ValueError(f"no attribute {number}")
        return attributes[number - 1]

    while True:
        command = _ask("> ")
        if not command:
            break
        try:
            head, _, rest = command.partition(" ")
            if command == "q":
                raise _Stop
            if command == "d":
                summary = _ask("what the image shows: ") or summary
            elif command == "f":
                flags.append(_ask("flag: "))
            elif head.isdigit():
                a = attribute(head)
                a["verdict"] = "natural" if a["verdict"] == "anomalous" else "anomalous"
                changes.setdefault(a["name"], {})["verdict"] = a["verdict"]
                print(f"  {a['name']}: {a['verdict']}")
            elif head[0] in "esr" and head[1:].isdigit():
                a = attribute(head[1:])
                change = changes.setdefault(a["name"], {})
                if head[0] == "e":
                    change["evidence"] = a["evidence"] = _ask(f"  {a['name']} evidence: ")
                elif head[0] == "s":
                    change["severity"] = a["severity"] = float(rest)
                else:
                    change["region"] = a["region"] = [int(v) for v in rest.split()]
            else:
                print(f"  unknown command {command!r}; {KEYS}")
        except (ValueError, IndexError) as err:
            print(f"  {err}")
    while True:
        call = {"r": "real", "f": "fake", "u": "unsure"}.get(_ask("your own call, without the label [r/f/u]: "))
        if call:
            break
    return {"reviewer": reviewer, "call": call, "summary": summary, "attributes": changes, "flags": flags}


def _interactive(args) -> int:
    from fakeinstruct.drafting.review import blind_view, read_decisions, read_drafts, review_id

    out = Path(args.out)
    log = out.with_name(out.name + ".decisions.jsonl")
    done = {d.id for _, d in read_decisions(log)} if log.exists() else set()
    drafts = read_drafts(args.drafts)
    images = out.with_name(out.name + ".images")
    images.mkdir(parents=True, exist_ok=True)
    todo = [record for _, record in drafts if record["id"] not in done]
    print(f"{len(done)} of {len(drafts)} drafts already reviewed; {len(todo)} to go")
    from fakeinstruct.files import resolve_inside

    try:
        for index, record in enumerate(todo, start=len(done) + 1):
            source = resolve_inside(Path(args.root), record["image"])
            image = images / f"{review_id(record['id'], str(out.resolve()))}{source.suffix.lower()}"
            shutil.copyfile(source, image)
            attributes = blind_view(record)["attributes"]
            _show(index, len(drafts), image, attributes)
            decision = {"id": record["id"], **_review_one(attributes, args.reviewer)}
            with log.open("a", encoding="utf-8") as handle:  # one line per decision: a stop loses nothing
                handle.write(json.dumps(decision, ensure_ascii=False) + "\n")
    except _Stop:
        print(f"stopped; {log} keeps the decisions so far: run the same command to go on")
        return 0
    return _apply(args, log, key=None)


def _apply(args, decisions_path: Path, key: dict | None) -> int:
    from fakeinstruct.drafting.review import read_decisions, review_drafts

    summary = review_drafts(
        args.drafts, args.root, read_decisions(decisions_path), args.out, key=key, decisions_file=str(decisions_path)
    )
    calls = ", ".join(f"{n} {call}" for call, n in sorted(summary.calls.items()))
    print(
        f"{summary.reviewed} reviewed records -> {summary.out} ({calls}; {summary.changed_verdicts} verdicts changed)"
    )
    if summary.missing:
        print(f"{len(summary.missing)} drafts have no decision yet and were left out (first: {summary.missing[0]})")
        return 1
    return 0


def _cmd_review(args) -> int:
    from fakeinstruct.drafting.review import export_packet

    if args.packet:
        key = export_packet(args.drafts, args.root, args.packet)
        print(f"blind packet -> {args.packet}; keep the key {key} away from the reviewers")
        return 0
    if not args.out:
        raise FakeInstructError("--out is required unless --packet is given", field="--out")
    if args.decisions:
        key = json.loads(Path(args.key).read_text(encoding="utf-8")) if args.key else None
        return _apply(args, Path(args.decisions), key)
    return _interactive(args)


def add_commands(sub) -> None:
    p = sub.add_parser(
        "review",
        help="blind review of machine drafts (terminal, or decisions from a packet)",
        description="Blind review of machine drafts." + __doc__.split(":", 1)[1].split(".", 1)[1],
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    p.add_argument("drafts", help="drafted FakeChain JSONL (fakeinstruct draft)")
    p.add_argument("--root", required=True, help="dataset root that the drafts' image paths are relative to")
    p.add_argument("--out", help="where the reviewed FakeChain records go")
    p.add_argument("--reviewer", default="anonymous reviewer", help="who reviews (recorded in provenance)")
    p.add_argument("--decisions", help="apply this decisions JSONL instead of reviewing in the terminal")
    p.add_argument("--key", help="the packet's key (review id -> record id), for decisions that use review ids")
    p.add_argument(*both_spellings("--packet"), help="write a blind review packet to this folder and stop")
    p.set_defaults(func=_cmd_review)
