"""FakeChain -> FakeInstruct: validate and plan, expand each record with the templates, write shards in a format.

``generate(GenerateConfig(chains=..., out=...))`` is the whole run; ``fakeinstruct generate`` is its command line.
"""

from fakeinstruct.generation.config import GenerateConfig
from fakeinstruct.generation.run import GenerateResult, generate

__all__ = ["GenerateConfig", "GenerateResult", "generate"]
