"""Public forensic datasets in their published layouts -> FakeChain records (``fakeinstruct import``).

A plain registry, format name -> importer module; each module's ``read(root, config, report)`` yields
:class:`~fakeinstruct.importers.common.Entry` objects (or per-record errors) and its docstring says where each field
comes from. :func:`import_dataset` runs one (:mod:`fakeinstruct.importers.run`).

- ``fakeclue``: FakeClue (FakeVLM's data), explanations mapped onto the taxonomy;
- ``loki``: LOKI's image judgement questions, and its open-ended file's region descriptions as evidence;
- ``fakebench``: FakeBench, its telltale categories mapped onto the taxonomy;
- ``folders``: folder trees of the GenImage kind, or plain ``real/``/``fake/`` folders, drafted from the images.
"""

from __future__ import annotations

import importlib

from fakeinstruct.importers.config import FORMAT_NAMES, ImportConfig

FORMATS = {name: f"fakeinstruct.importers.{name}" for name in FORMAT_NAMES}


def importer(name: str):
    """The importer module of format ``name``."""
    return importlib.import_module(FORMATS[name])


def import_dataset(config: ImportConfig):
    """Run an import; see :mod:`fakeinstruct.importers.run`."""
    from fakeinstruct.importers.run import import_dataset as run

    return run(config)


__all__ = ["FORMATS", "ImportConfig", "import_dataset", "importer"]
