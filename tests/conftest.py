"""Shared test set-up: a Hypothesis profile without per-example deadlines
(timings on a loaded CI machine are not what these tests check)."""
from hypothesis import settings

settings.register_profile("lsm", deadline=None)
settings.load_profile("lsm")


def pytest_addoption(parser):
    parser.addoption("--crash-long", action="store_true", default=False,
                     help="crash-state sweep at every file operation, all crash models, several seeds "
                          "(tests/test_crash_states.py); minutes instead of seconds")
