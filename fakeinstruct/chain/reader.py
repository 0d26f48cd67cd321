"""Read FakeChain JSONL line by line: every line is parsed and validated on its own, so one bad line never
costs its neighbours. Each problem becomes a :class:`FakeChainError` with file, line and field.

A line ends at ``\n``, ``\r\n`` or a lone ``\r`` (old Mac exports), mixed in one file too: a JSON text holds no raw
line break inside a string, so a lone ``\r`` can only end a line. A UTF-8 byte-order mark at the start of the file is
skipped.

orjson on raw byte lines replaces the ``jsonlines`` package here: we need to go on past a bad line, tell
non-UTF-8 bytes apart from bad JSON, and refuse an oversized line before parsing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import ValidationError

from fakeinstruct.chain import FakeChain
from fakeinstruct.chain.taxonomy import Taxonomy, default_taxonomy
from fakeinstruct.errors import FakeChainError
from fakeinstruct.files import resolve_inside
from fakeinstruct.images import DEFAULT_LIMITS, ImageLimits, check_image

MAX_LINE_BYTES = 1024 * 1024
BOM = b"\xef\xbb\xbf"
_READ = 1 << 20  # bytes read at most at once, so that a file without \n is not read whole to find its \r endings


def iter_lines(handle, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for every line of the binary ``handle`` from its position ``offset`` (a line start), the
    line without its ending (``\n``, ``\r\n`` or ``\r``); at offset 0 without a UTF-8 byte-order mark."""
    parts: list[bytes] = []  # the line read so far, when it spans reads
    start, after_cr = offset, False
    if offset == 0:
        head = handle.read(len(BOM))
        if head == BOM:
            start = offset = len(BOM)
        else:
            handle.seek(0)
    while chunk := handle.readline(_READ):
        if not parts and not after_cr and chunk[-1:] == b"\n" and b"\r" not in chunk:  # the usual line, whole
            yield offset, chunk[:-1]
            offset = start = offset + len(chunk)
            continue
        pos = 0
        if after_cr and chunk[:1] == b"\n":  # the \n of a \r\n that a read split
            pos, start = 1, offset + 1
        after_cr = False
        while (cr := chunk.find(b"\r", pos)) >= 0:
            yield start, b"".join([*parts, chunk[pos:cr]])
            parts, pos = [], cr + 1
            if chunk[pos : pos + 1] == b"\n":
                pos += 1
            else:
                after_cr = pos == len(chunk)  # a \n may start the next read
            start = offset + pos
        rest = chunk[pos:]
        if rest[-1:] == b"\n":
            yield start, b"".join([*parts, rest[:-1]])
            parts, start = [], offset + len(chunk)
        elif rest:
            parts.append(rest)
        offset += len(chunk)
    if parts:
        yield start, b"".join(parts)


def count_lines(data: bytes) -> int:
    """How many lines :func:`iter_lines` finds in ``data`` (blank ones included), when ``data`` starts a line."""
    ends = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    return ends + (bool(data) and data[-1:] not in (b"\n", b"\r"))


@dataclass
class Line:
    """One line of a chains file: the record when valid, else every problem found on it."""

    number: int
    raw: bytes
    offset: int = 0
    chain: FakeChain | None = None
    errors: list[FakeChainError] = field(default_factory=list)
    data: dict | None = None  # the line's JSON object, as parsed

    @property
    def ok(self) -> bool:
        return self.chain is not None and not self.errors


def _field_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(record)"


def parse_line(raw: bytes, *, file: str, number: int, taxonomy: Taxonomy) -> Line:
    """Parse and validate one JSONL line (without its image)."""
    line = Line(number=number, raw=raw)

    def fail(message: str, field_name: str) -> Line:
        line.errors.append(FakeChainError(message, file=file, line=number, field=field_name))
        return line

    if len(raw) > MAX_LINE_BYTES:
        return fail(f"line is {len(raw)} bytes, over the limit of {MAX_LINE_BYTES}", "(line)")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return fail(f"not valid UTF-8 at byte {err.start}", "(line)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return fail(f"invalid JSON: {err}", "(line)")
    if not isinstance(data, dict):
        return fail(f"expected a JSON object, got {type(data).__name__}", "(line)")
    line.data = data
    try:
        line.chain = FakeChain.model_validate(data, context={"taxonomy": taxonomy})
    except ValidationError as err:
        for problem in err.errors(include_url=False):
            message = problem["msg"].removeprefix("Value error, ")
            fail(message, _field_path(problem["loc"]))
    return line


def check_record_image(line: Line, root: Path, *, file: str, limits: ImageLimits, cache: dict | None = None) -> None:
    """Check the record's image and that attribute regions lie inside it; problems go to ``line.errors``.

    ``cache`` maps a file's identity (device, inode, size, mtime) to its check result, so an image that many
    records share (several annotations, links) is decoded once.
    """
    chain = line.chain
    try:
        key = None
        if cache is not None:
            st = resolve_inside(root, chain.image).stat()
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if key in cache:
                width, height = cache[key]
        if key is None or key not in cache:
            width, height = check_image(root, chain.image, limits)
            if key is not None:
                cache[key] = (width, height)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            message = f"image file not found: {chain.image}"
        else:
            message = f"cannot read image {chain.image}: {err.strerror or err}"
        line.errors.append(FakeChainError(message, file=file, line=line.number, field="image"))
        return
    except FakeChainError as err:
        line.errors.append(FakeChainError(err.message, file=file, line=line.number, field=err.field))
        return
    for i, attribute in enumerate(chain.attributes):
        if attribute.region and (attribute.region[2] > width or attribute.region[3] > height):
            line.errors.append(
                FakeChainError(
                    f"region {list(attribute.region)} exceeds the {width}x{height} image",
                    file=file,
                    line=line.number,
                    field=f"attributes[{i}].region",
                )
            )


def read_chains(
    path: str | Path,
    *,
    root: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
    check_images: bool = True,
    limits: ImageLimits = DEFAULT_LIMITS,
    start: int = 0,
    end: int | None = None,
    check_duplicates: bool = True,
    image_cache: dict | None = None,
) -> Iterator[Line]:
    """Yield every non-blank line of ``path`` parsed, validated and (optionally) image-checked.

    ``root`` is the dataset root that image paths are relative to; it defaults to the file's folder.
    A record whose id already appeared on an earlier valid line is rejected. ``start``/``end`` read only the
    lines that begin in that byte range (``start`` must be a line start); line numbers then count from 1 at
    ``start``, and duplicate ids can only be found across ranges by the caller. ``image_cache`` carries the image
    checks (keyed by file identity, as in :func:`check_record_image`) from one call to the next.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    taxonomy = taxonomy or default_taxonomy()
    file = str(path)
    seen: dict[str, int] = {}
    image_cache = {} if image_cache is None else image_cache.setdefault((str(root), limits), {})
    try:
        handle = path.open("rb")
    except OSError as err:
        raise FakeChainError(f"cannot open chains file: {err.strerror}", file=file) from err
    with handle:
        handle.seek(start)
        for number, (line_start, raw) in enumerate(iter_lines(handle, start), start=1):
            if end is not None and line_start >= end:
                break
            if not raw.strip():
                continue
            line = parse_line(raw, file=file, number=number, taxonomy=taxonomy)
            line.offset = line_start
            if line.chain is not None:
                if check_duplicates and line.chain.id in seen:
                    line.errors.append(
                        FakeChainError(
                            f"duplicate id {line.chain.id!r} (first on line {seen[line.chain.id]})",
                            file=file,
                            line=number,
                            field="id",
                        )
                    )
                elif check_images:
                    check_record_image(line, root, file=file, limits=limits, cache=image_cache)
                if line.ok:
                    seen[line.chain.id] = number
            yield line
