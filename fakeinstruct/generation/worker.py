"""Per-process state of generation workers (both passes): built once, used for every task the process runs."""

from __future__ import annotations

STATE: dict = {}


def init_worker(config) -> None:
    """Load the taxonomy and the templates (compiled once per process) and open the chains file."""
    from fakeinstruct.chain.taxonomy import load_taxonomy
    from fakeinstruct.generation.arrow_schema import arrow_schema
    from fakeinstruct.generation.expand import Expander
    from fakeinstruct.templating.registry import load_registry

    taxonomy = load_taxonomy(config.taxonomy)
    registry = load_registry(config.template_dirs, builtin=config.builtin_templates)
    registry = registry.select(config.families)
    close()
    STATE.update(
        config=config,
        taxonomy=taxonomy,
        expander=Expander(registry, taxonomy, config.seed),
        schema=arrow_schema(config.format, config.images == "embed"),
        chains=open(config.chains, "rb"),  # noqa: SIM115 - held for the worker's lifetime
    )


def close() -> None:
    if "chains" in STATE:
        STATE["chains"].close()
    STATE.clear()
