"""kvmviz.scenario: a Scenario refuses, by name, every parameter it cannot mean.

Each field is stored in its canonical type: numpy numbers are welcome (a sweep over
``np.arange`` hands them in), while strings, booleans, NaN and infinity are refused, never
coerced, with one sentence naming ``Scenario.<field>`` and what was expected.
"""

from __future__ import annotations

import numpy as np
import pytest

import kvmviz as kv


def test_numpy_numbers_are_stored_as_python_numbers():
    """np.int64(4) vCPUs are 4 vCPUs (an int), and np.float32 costs are floats."""
    s = kv.Scenario(n_vcpus=np.int64(4), read_hold_us=np.float32(1.5), relevant_mix=np.ones(3))
    assert s.n_vcpus == 4 and type(s.n_vcpus) is int
    assert s.read_hold_us == 1.5 and type(s.read_hold_us) is float
    assert s.relevant_mix == (1.0, 1.0, 1.0)
    assert s == kv.Scenario(n_vcpus=4, read_hold_us=1.5)


@pytest.mark.parametrize(
    ("field", "value", "error", "expected"),
    [
        ("n_vcpus", True, TypeError, "an integer >= 1"),
        ("n_vcpus", 4.0, TypeError, "an integer >= 1"),
        ("n_vcpus", "4", TypeError, "an integer >= 1"),
        ("n_vcpus", 0, ValueError, "an integer >= 1"),
        ("duration_us", "20", TypeError, "a finite number"),
        ("duration_us", float("nan"), ValueError, "a finite number"),
        ("duration_us", float("inf"), ValueError, "a finite number"),
        ("duration_us", 0.0, ValueError, "> 0"),
        ("read_hold_us", False, TypeError, "a finite number"),
        ("notifier_rate_hz", -1.0, ValueError, ">= 0"),
        ("notifier_rate_hz", 1e400, ValueError, "a finite number"),
        ("spurious_share", 1.01, ValueError, "share between 0 and 1"),
        ("relevant_mix", "abc", TypeError, "three finite weights"),
        ("relevant_mix", (1, float("inf"), 1), ValueError, "three finite weights"),
        ("relevant_mix", (1, "1", 1), TypeError, "three finite weights"),
        ("relevant_mix", (1, 1), ValueError, "three finite weights"),
        ("relevant_mix", (0, 0, 0), ValueError, "not all 0"),
        ("memslot_lookup", "hash", ValueError, "interval-tree"),
        ("layout", "q35", TypeError, "MemslotLayout"),
    ],
)
def test_bad_fields_are_refused_by_name(field, value, error, expected):
    """The error names the field, shows the value and says what was expected."""
    with pytest.raises(error) as info:
        kv.Scenario(**{field: value})
    message = str(info.value)
    assert message.startswith(f"Scenario.{field} = "), message
    assert expected in message


def test_replace_validates_again():
    """A copy with a bad change is refused like a new Scenario."""
    with pytest.raises(ValueError, match=r"Scenario\.faulting_share"):
        kv.Scenario().replace(faulting_share=2.0)
