"""The one table of task families and template kinds, and the rule that ties a closed answer to its first word."""

from __future__ import annotations

# Task families, in the order the registry lists them and the generator renders them.
FAMILIES = ("detection", "explanation", "attribute", "enhancement", "multi_turn")
# The kinds of template each family may hold.
KINDS = {
    "detection": ("closed", "choice"),
    "explanation": ("free",),
    "attribute": ("per_attribute", "attribute_closed", "listing"),
    "enhancement": ("free",),
    "multi_turn": ("conversation",),
}
# Variables a kind adds to the record's own (see :mod:`fakeinstruct.templating.variables`).
KIND_VARIABLES = {
    "closed": {"answer"},
    "choice": {"answer", "options"},
    "per_attribute": {"attribute"},
    "attribute_closed": {"attribute", "answer"},
    "conversation": {"attribute"},
}
# The classes whose answer words a closed kind declares: (positive, negative).
ANSWER_CLASSES = {"closed": ("fake", "real"), "attribute_closed": ("anomalous", "natural")}
# Kinds rendered once per sampled attribute of a record rather than once per record.
ATTRIBUTE_KINDS = ("per_attribute", "attribute_closed")
# Kinds that may answer a turn of a conversation, per family.
TURN_KINDS = {
    "detection": ("closed", "choice"),
    "explanation": ("free",),
    "attribute": ("per_attribute", "attribute_closed"),
    "enhancement": ("free",),
}
# Open-ended kinds: the only ones that may answer a follow-up question a conversation template asks itself.
OPEN_KINDS = ("free", "per_attribute")
# FakeChain fields a template may require to be non-empty.
REQUIRABLE = ("enhancement", "reasoning", "attributes")


def starts_with_word(text: str, word: str) -> bool:
    """Whether ``text`` starts with ``word`` as a whole word: the token-probability estimator reads the answer there."""
    return text.startswith(word) and (len(text) == len(word) or not text[len(word)].isalnum())
