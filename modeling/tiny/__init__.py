"""Tiny checkpoints built offline from configs: LLaVA (``llava``) and Idefics3 (``idefics3``)."""
