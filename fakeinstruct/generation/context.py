"""What a generation worker holds for the whole run, made once per process and passed to every task it runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

import pyarrow as pa

from fakeinstruct.chain.taxonomy import Taxonomy, load_taxonomy
from fakeinstruct.generation.config import GenerateConfig
from fakeinstruct.generation.expand import Expander
from fakeinstruct.generation.formats import FORMATS, Format
from fakeinstruct.templating.registry import load_registry


@dataclass
class GenerationContext:
    """The config, the taxonomy, the compiled templates, the output schema and the open chains file."""

    config: GenerateConfig
    schema: pa.Schema
    taxonomy: Taxonomy
    expander: Expander
    layout: Format
    chains: IO[bytes]
    # image checks by file identity, shared by the ranges this process validates (an image is decoded once)
    image_checks: dict = field(default_factory=dict)
    # image folders this process has made under the output's images/ (one mkdir per folder, not per record)
    image_folders: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, config: GenerateConfig, schema: pa.Schema) -> GenerationContext:
        """Load the taxonomy and the templates (compiled once per process) and open the chains file."""
        taxonomy = load_taxonomy(config.taxonomy)
        registry = load_registry(config.template_dirs, builtin=config.builtin_templates).select(config.families)
        chains = open(config.chains, "rb")  # noqa: SIM115 - held for the context's lifetime, closed by close()
        expander = Expander(registry, taxonomy, config.seed, exclude_undecided=config.undecided == "exclude")
        return cls(config, schema, taxonomy, expander, FORMATS[config.format], chains)

    def close(self) -> None:
        self.chains.close()


# The context of this worker process. A process pool hands its tasks only what it pickles; what a worker keeps
# between tasks lives here, set once by the pool's initializer, and reaches the tasks as their first argument.
_worker_context: GenerationContext | None = None


def _start_worker(config: GenerateConfig, schema: pa.Schema) -> None:
    global _worker_context
    _worker_context = GenerationContext.create(config, schema)


def _call(task: tuple[Callable, object]):
    function, argument = task
    return function(_worker_context, argument)


class Workers:
    """Runs ``function(context, argument)`` tasks: in this process, or in a pool of ``config.workers`` processes
    that each make their own context."""

    def __init__(self, config: GenerateConfig, schema: pa.Schema):
        self.pool = self.context = None
        if config.workers > 1:
            import multiprocessing as mp

            self.pool = mp.get_context("spawn").Pool(config.workers, _start_worker, (config, schema))
        else:
            self.context = GenerationContext.create(config, schema)

    def map(self, function: Callable, arguments: Iterable, *, ordered: bool = True) -> Iterator:
        if self.pool is None:
            return (function(self.context, argument) for argument in arguments)
        tasks = ((function, argument) for argument in arguments)
        return self.pool.imap(_call, tasks) if ordered else self.pool.imap_unordered(_call, tasks)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()

    def terminate(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        if self.context is not None:
            with contextlib.suppress(OSError):
                self.context.close()
