"""The FakeInstruct output folder and its files: the one place that knows their names and what they hold.

::

    <folder>/fakeinstruct_config.json   identity (what the output depends on), the run's config, the planned shards
    <folder>/manifest.json              every finished shard: path, rows, sha256, stats
    <folder>/<split>/<split>-NNNNN.<ext> the shards
    <folder>/images/...                 images, once each (relative image mode)
    <folder>/stats.json, README.md, stats.png

Generation writes it (:meth:`FakeInstructFolder.prepare`, :meth:`write_config`, :meth:`write_manifest`); loading,
evaluation and the quality report read it (:meth:`FakeInstructFolder.open`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.files import is_temp, remove_stale_temps, write_text

logger = logging.getLogger(__name__)

CONFIG_FILE = "fakeinstruct_config.json"
MANIFEST_FILE = "manifest.json"
STATS_FILE = "stats.json"
CARD_FILE = "README.md"
FIGURE_FILE = "stats.png"
IMAGES_DIR = "images"
SPLITS = ("train", "validation", "test")


def shard_name(split: str, index: int) -> str:
    """A shard's name: its path inside the folder without the extension."""
    return f"{split}/{split}-{index:05d}"


def split_of(name: str) -> str:
    return name.split("/", 1)[0]


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FakeInstructError(f"{path.parent} is not a FakeInstruct folder: {path.name} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise FakeInstructError(
            f"{what} is unreadable ({err}); run generate again with --overwrite", file=str(path)
        ) from err
    if not isinstance(data, dict):
        raise FakeInstructError(f"{what} is not a JSON object; run generate again with --overwrite", file=str(path))
    return data


_WRITE_HINTS = {
    errno.ENOSPC: "free some space and run the same command again: the shards already written are kept",
    errno.EDQUOT: "free some space and run the same command again: the shards already written are kept",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "no permission to write there: choose another --out",
    errno.EPERM: "no permission to write there: choose another --out",
}


@contextlib.contextmanager
def writing(out: str | Path) -> Iterator[None]:
    """Turn a failed write into the output folder (disk full, read-only, no permission), in this process or in a
    worker, into one :class:`FakeInstructError` naming the folder, the reason and what to do."""
    try:
        yield
    except OSError as err:
        hint = _WRITE_HINTS.get(err.errno, "run the same command again: the shards already written are kept")
        raise FakeInstructError(
            f"cannot write the output folder: {err.strerror or err}; {hint}", file=str(out)
        ) from err


class FakeInstructFolder:
    """A ``fakeinstruct generate`` output folder."""

    def __init__(self, path: str | Path, config: dict | None = None):
        self.path = Path(path)
        self._config = config

    # --- reading -------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path) -> FakeInstructFolder:
        """An existing folder; a missing or corrupt config file is an error naming it."""
        folder = cls(path)
        config = _read_json(folder.path / CONFIG_FILE, "the generation config")
        if not isinstance(config.get("identity"), dict):
            raise FakeInstructError(
                "the generation config has no identity; run generate again with --overwrite",
                file=str(folder.path / CONFIG_FILE),
            )
        folder._config = config
        return folder

    @property
    def config(self) -> dict:
        if self._config is None:
            raise FakeInstructError(f"{self.path}: the folder was not opened")
        return self._config

    @property
    def identity(self) -> dict:
        """What the output depends on: format, file format, image mode, seed, templates, chains hash ..."""
        return self.config["identity"]

    @property
    def format(self) -> str:
        return self.identity["format"]

    @property
    def file_format(self) -> str:
        return self.identity["file_format"]

    @property
    def image_mode(self) -> str:
        return self.identity["images"]

    def manifest(self) -> dict:
        """``{"shards": {name: entry}}`` of the shards written so far."""
        path = self.path / MANIFEST_FILE
        if not path.exists():
            return {"shards": {}}
        manifest = _read_json(path, "the shard manifest")
        if not isinstance(manifest.get("shards"), dict):
            raise FakeInstructError(
                "the shard manifest has no shards; run generate again with --overwrite", file=str(path)
            )
        return manifest

    def planned(self) -> list[str] | None:
        """The names of every shard the run planned (None for folders written before plans were recorded)."""
        return self.config.get("planned_shards")

    def missing(self) -> list[str]:
        """Planned shards that are not (yet) in the manifest: an interrupted run left them out."""
        planned = self.planned()
        if planned is None:
            return []
        done = self.manifest()["shards"]
        return [name for name in planned if name not in done]

    def shards(self, split: str | None = None, *, complete: bool = True) -> dict[str, list[Path]]:
        """Shard paths per split (of ``split`` only when given), in order.

        With ``complete`` an interrupted folder is refused: it would load as if it were the whole dataset.
        """
        if complete:
            missing = self.missing()
            if missing:
                raise FakeInstructError(
                    f"{self.path} is incomplete: {len(missing)} planned shard(s) were never written (first: "
                    f"{missing[0]}); run the same generate command again to finish it"
                )
        out: dict[str, list[Path]] = {}
        for name, entry in sorted(self.manifest()["shards"].items()):
            if split in (None, split_of(name)):
                out.setdefault(split_of(name), []).append(self.path / entry["path"])
        if split is not None and not out:
            raise FakeInstructError(f"{self.path} has no split {split!r}")
        return out

    def stats(self) -> dict:
        return _read_json(self.path / STATS_FILE, "stats.json")

    def write_stats(self, stats: dict) -> None:
        write_text(self.path / STATS_FILE, json.dumps(stats, indent=2) + "\n")

    def write_card(self, text: str) -> None:
        write_text(self.path / CARD_FILE, text)

    # --- writing -------------------------------------------------------------------------------------------

    @classmethod
    def prepare(cls, path: str | Path, identity: dict, overwrite: bool) -> tuple[FakeInstructFolder, dict]:
        """The output folder for a run of ``identity`` and the manifest of shards an earlier run of it finished.

        A folder of another identity (or a corrupt one) is replaced with ``overwrite`` and refused without it; a
        non-empty folder that is not ours is always refused.
        """
        folder = cls(path)
        out = folder.path
        if out.exists() and not out.is_dir():
            raise FakeInstructError(f"--out {out} is a file, not a folder")
        # a concurrent writer's temporary files (its config, before it lands) do not make the folder someone else's
        if out.exists() and any(not is_temp(entry) for entry in out.iterdir()):
            if not (out / CONFIG_FILE).exists():
                raise FakeInstructError(f"refusing to write into {out}: it is not empty and holds no {CONFIG_FILE}")
            try:
                previous = cls.open(out)
                manifest = previous.manifest()
            except FakeInstructError:
                if not overwrite:
                    raise
                previous, manifest = None, {"shards": {}}
            if previous is not None and previous.identity == identity and not overwrite:
                for temp in remove_stale_temps(out):  # what a killed run left behind
                    logger.debug("removed %s", temp)
                return folder, manifest
            if not overwrite:
                changed = sorted(k for k in identity if previous.identity.get(k) != identity[k])
                raise FakeInstructError(
                    f"{out} holds output generated with a different {', '.join(changed)}; pass --overwrite to "
                    "replace it"
                )
            shutil.rmtree(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise FakeInstructError(f"cannot create the output folder: {err.strerror or err}", file=str(out)) from err
        return folder, {"shards": {}}

    def write_config(self, identity: dict, config: dict, planned: list[str], image_prefix: str = "") -> None:
        """``image_prefix``: what the chains' image paths start with, replaced by ``images/`` in this folder."""
        self._config = {
            "identity": identity,
            "config": config,
            "planned_shards": planned,
            "image_prefix": image_prefix,
        }
        write_text(self.path / CONFIG_FILE, json.dumps(self._config, indent=2) + "\n")

    def write_manifest(self, text: str) -> None:
        """``text`` from :class:`ManifestWriter`: the manifest is rewritten whole, atomically, after each shard."""
        write_text(self.path / MANIFEST_FILE, text)


class ManifestWriter:
    """The manifest's text, kept shard by shard: serialising each shard once, rather than the whole manifest after
    every shard, keeps the main process off the CPU the workers need. The text is what
    ``json.dumps(manifest, indent=1, sort_keys=True)`` writes."""

    def __init__(self, folder: FakeInstructFolder, done: dict[str, dict]):
        self.folder = folder
        self.entries = {name: self._entry(name, entry) for name, entry in done.items()}

    @staticmethod
    def _entry(name: str, entry: dict) -> str:
        return f"  {json.dumps(name)}: " + json.dumps(entry, indent=1, sort_keys=True).replace("\n", "\n  ")

    def add(self, name: str, entry: dict) -> None:
        self.entries[name] = self._entry(name, entry)
        self.folder.write_manifest(self.text())

    def text(self) -> str:
        if not self.entries:
            return json.dumps({"shards": {}}, indent=1) + "\n"
        return '{\n "shards": {\n' + ",\n".join(self.entries[name] for name in sorted(self.entries)) + "\n }\n}\n"
