"""Instruction templates as data: kinds, the registry, what a template sees, load-time probes, the engine."""
