"""Modeling side of FakeScope-Kit: tiny-model builder, token-probability estimator, calibration, detector.

Only the package marker exists so far; the pieces land with their issues (see README.md, "Status").
"""
