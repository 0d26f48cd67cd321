"""The FakeChain record (schema, taxonomy), reading chains files line by line and validating them."""

from fakeinstruct.chain.schema import (
    IMAGE_PLACEHOLDER,
    MAX_TEXT_CHARS,
    SCHEMA_VERSION,
    Attribute,
    FakeChain,
    GeneratorFamily,
    Label,
    Provenance,
    Source,
    json_schema,
)

__all__ = [
    "IMAGE_PLACEHOLDER",
    "MAX_TEXT_CHARS",
    "SCHEMA_VERSION",
    "Attribute",
    "FakeChain",
    "GeneratorFamily",
    "Label",
    "Provenance",
    "Source",
    "json_schema",
]
