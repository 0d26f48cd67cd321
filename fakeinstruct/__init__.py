"""FakeInstruct: turn FakeChain authenticity reasoning chains into visual instruction pairs.

Importing this package is cheap and never imports torch; heavy pieces load on first use.
"""

from fakeinstruct.errors import FakeChainError, FakeInstructError, TemplateError

__version__ = "0.1.0"

__all__ = ["FakeChainError", "FakeInstructError", "TemplateError", "__version__"]
