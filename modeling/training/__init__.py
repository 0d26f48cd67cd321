"""Supervised fine-tuning: the entry point of ``scripts/sft.py``, its data, preemption, resuming and LoRA merging."""
