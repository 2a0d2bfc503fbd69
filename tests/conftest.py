"""Hypothesis profile shared by the suite (deterministic, no deadline)."""

from hypothesis import settings

settings.register_profile("default", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("default")
