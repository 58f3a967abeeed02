"""Shared test set-up: a Hypothesis profile without per-example deadlines
(timings on a loaded CI machine are not what these tests check)."""
from hypothesis import settings

settings.register_profile("lsm", deadline=None)
settings.load_profile("lsm")
