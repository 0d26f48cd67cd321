"""YAML data files (template and taxonomy files): plain data, without anchors and aliases.

An alias repeats a node by reference, so a few hundred bytes of nested aliases ("billion laughs") stand for billions
of nodes that validation, hashing or printing would walk. Our files have no use for them: one is refused, with the
line it is on, before anything is built.
"""

from __future__ import annotations

import yaml


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed in this file", event.start_mark
            )
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, f"YAML anchors (&{event.anchor}) are not allowed in this file", event.start_mark
            )
        return super().compose_node(parent, index)


def load_yaml(text: str):
    """``yaml.safe_load`` without anchors and aliases (a :class:`yaml.YAMLError` naming the line otherwise)."""
    loader = _NoAliasLoader(text)  # what yaml.load does, with a SafeLoader that refuses anchors and aliases
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
