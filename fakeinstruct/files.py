"""Safe files, shared by both packages: paths confined to a root, atomic writes and folder swaps, and temporary
names only we make.

Readers see either the old file (or folder) or the complete new one, never a partial one. A temporary file is
named ``.<name>.fkit-<host>-<pid>-<random>.tmp``: nothing but this program makes such a name, and the host and
process id say whose it is, so :func:`remove_stale_temps` deletes only what a dead process of this machine left
behind, never a user's file or a concurrent writer's work in progress.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO

from fakeinstruct.errors import FakeChainError

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_TEMP = re.compile(r"^\..+\.fkit-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")


@lru_cache(maxsize=65536)
def _resolved_dir(root: str, relative_dir: str) -> tuple[Path, Path]:
    resolved_root = Path(root).resolve()
    return resolved_root, (resolved_root / relative_dir).resolve()


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` with symlinks resolved, refusing anything that ends up outside ``root``.

    Resolved folders are cached (many records share one), so only the file itself is looked at per call. A path that
    cannot be resolved (a NUL byte, a symlink loop, a name too long) is a :class:`FakeChainError` like any bad path.
    """
    if "\0" in relative:
        raise FakeChainError(f"image path {relative!r} contains a NUL byte", field="image")
    relative_dir, _, name = relative.rpartition("/")
    try:
        resolved_root, folder = _resolved_dir(str(root), relative_dir)
        target = folder / name
        if name in ("", ".", "..") or target.is_symlink():
            target = target.resolve()
    except (OSError, RuntimeError) as err:  # Python 3.11 reports a symlink loop as RuntimeError, 3.13 as ELOOP
        loop = isinstance(err, RuntimeError) or err.errno == errno.ELOOP
        reason = "symlink loop" if loop else (err.strerror or str(err))
        raise FakeChainError(f"cannot resolve {relative!r}: {reason}", field="image") from None
    if not target.is_relative_to(resolved_root):
        raise FakeChainError(f"{relative!r} resolves outside the dataset root {str(resolved_root)!r}", field="image")
    return target


def temp_prefix(name: str) -> str:
    """The start of a temporary name for ``name`` made by this process; ``tempfile`` adds the random part."""
    return f".{name}.fkit-{_HOST}-{os.getpid()}-"


def is_temp(path: str | Path) -> bool:
    """Whether ``path`` is named as this program's temporary files are, whoever made it."""
    return bool(_TEMP.match(Path(path).name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def is_stale_temp(path: Path) -> bool:
    """Whether ``path`` is a temporary file or folder of ours whose process, on this machine, is gone."""
    match = _TEMP.match(path.name)
    return bool(match) and match["host"] == _HOST and not _alive(int(match["pid"]))


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the stale temporaries (:func:`is_stale_temp`) in ``folder`` and below; return what was deleted."""
    removed = []
    for path in sorted(Path(folder).rglob("*.tmp")):
        if is_stale_temp(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside ``path``, fsync it and rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a dataset file is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def copy_file(src: str | Path, dst: str | Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary name, so that ``dst`` is never seen half-written."""
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dst.name), suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; when the block succeeds it replaces ``path`` by renames.

    Readers see the old folder or the complete new one. Between the two renames the old one is parked at
    ``.<name>.old``; a crash right there is repaired by the next call, which moves it back first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.with_name(f".{path.name}.old")
    if old.exists() and not path.exists():
        old.rename(path)
    staging = Path(tempfile.mkdtemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent))
    try:
        yield staging
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            staging.rename(path)
            shutil.rmtree(old)
        else:
            staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
