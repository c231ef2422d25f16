"""Shared test setup: headless matplotlib, no leaked figures, hypothesis profiles."""

import os
import sys

# Before anything imports matplotlib.pyplot: never open a window, in tests or their subprocesses.
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(
    "ci" if os.environ.get("CI", "").lower() not in ("", "0", "false", "no") else "dev"
)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every matplotlib figure a test left open."""
    yield
    # Only if the test (or the code under test) imported pyplot: don't pay its import otherwise.
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        plt.close("all")
