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


# -- runs several test files draw and measure (simulated once per session) ----------------------
@pytest.fixture(scope="session")
def busy8():
    """Eight vCPUs in a fault storm on v5.12: writers wait and readers queue behind them."""
    import kvmviz as kv

    return kv.simulate(kv.presets.STORM_VM, kernel="v5.12", seed=0)


@pytest.fixture(scope="session")
def calm8(busy8):
    """A 2 µs window of busy8 in which no acquisition waits."""
    import numpy as np

    waited = busy8.lock[busy8.lock["wait_us"] > 0]
    for t in np.arange(0.0, 3_000.0, 2.0):
        if not ((waited["t_request_us"] < t + 2) & (waited["t_grant_us"] > t)).any():
            return t, t + 2
    raise AssertionError("no calm window")


@pytest.fixture(scope="session")
def big416():
    """The 416-vCPU VM for 2 ms on v5.12: too many vCPUs for one lane each."""
    import kvmviz as kv

    return kv.simulate(kv.Scenario(duration_us=2_000), kernel="v5.12", seed=0)


# -- the bundled real trace, read once per session ----------------------------------------------
@pytest.fixture(scope="session")
def events():
    """The bundled trace, parsed strictly: a clean file gives no TraceParseWarning."""
    import warnings

    from _traces import TRACE

    from kvmviz import traces

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return traces.load_ftrace(TRACE)


@pytest.fixture(scope="session")
def layout():
    """The memslots of the VM the bundled trace was recorded on."""
    from _traces import LAYOUT

    from kvmviz import traces

    return traces.load_layout_json(LAYOUT)


@pytest.fixture(scope="session")
def classified(events, layout):
    """The bundled trace with each record's hit and gfn ranges (kvmviz.classify.records)."""
    from kvmviz import classify

    return classify.records(events, layout)
