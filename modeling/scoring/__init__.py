"""Scoring images with a checkpoint: token probabilities of answer words, greedy answers, whole splits (cached)."""
