"""kvmviz.scenario: a Scenario refuses, by name, every parameter it cannot mean, and says where
each of its numbers comes from.

Each field is stored in its canonical type: numpy numbers are welcome (a sweep over
``np.arange`` hands them in), while strings, booleans, NaN and infinity are refused, never
coerced, with one sentence naming ``Scenario.<field>`` and what was expected. Each field has one
row in the calibration table (``PARAMETERS``, ``parameter_table()``): its status and source.
"""

from __future__ import annotations

import dataclasses

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
        ("preempt", "lazy", ValueError, "'none', 'voluntary' or 'full'"),
        ("preempt", 1, TypeError, "'none', 'voluntary' or 'full'"),
        ("preempt_dynamic", "yes", TypeError, "True (CONFIG_PREEMPT_DYNAMIC) or False"),
        ("spte_kib", 2.0, ValueError, ">= 4 KiB"),
        ("numa_scan_size_mib", 0.0, ValueError, "> 0 MiB"),
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


_NUMBER_FIELDS = [
    f.name
    for f in dataclasses.fields(kv.Scenario)
    if f.name
    not in (
        "n_vcpus",
        "layout",
        "relevant_mix",
        "memslot_lookup",
        "tdp_mmu",
        "preempt",
        "preempt_dynamic",
    )
]


@pytest.mark.parametrize("field", _NUMBER_FIELDS)
@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("1", TypeError),
        (b"1", TypeError),
        (True, TypeError),
        (np.True_, TypeError),
        (None, TypeError),
        (1 + 0j, TypeError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (-float("inf"), ValueError),
        (np.float64("nan"), ValueError),
    ],
    ids=["str", "bytes", "True", "np.True_", "None", "complex", "nan", "inf", "-inf", "np.nan"],
)
def test_every_number_field_refuses_what_is_not_a_finite_number(field, value, error):
    """All nineteen numeric fields share one rule: strings, booleans, None and complex numbers
    are the wrong type, NaN and infinity the wrong value; the message names the field."""
    with pytest.raises(error, match=rf"^Scenario\.{field} = .*: expected a finite number"):
        kv.Scenario(**{field: value})


@pytest.mark.parametrize("field", _NUMBER_FIELDS)
@pytest.mark.parametrize("make", [np.float64, np.float32, np.int64, int], ids=lambda m: m.__name__)
def test_every_number_field_takes_numpy_numbers_as_floats(field, make):
    """A valid value in any numeric type is stored as a Python float equal to it."""
    # within every field's range (shares included, durations > 0; an SPTE is at least 4 KiB)
    value = make(4 if field == "spte_kib" else 1)
    stored = getattr(kv.Scenario(**{field: value}), field)
    assert type(stored) is float and stored == float(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (np.int64(4), None),
        (np.uint8(4), None),
        (4.0, TypeError),
        (np.float64(4), TypeError),
        ("4", TypeError),
        (np.True_, TypeError),
        (None, TypeError),
        (-1, ValueError),
        (np.int64(0), ValueError),
    ],
)
def test_n_vcpus_is_a_positive_integer_of_any_integer_type(value, error):
    """np.int64(4) is four vCPUs, stored as an int; 4.0 is refused (not rounded) and 0 too."""
    if error is None:
        scenario = kv.Scenario(n_vcpus=value)
        assert scenario.n_vcpus == 4 and type(scenario.n_vcpus) is int
        return
    with pytest.raises(error, match=r"^Scenario\.n_vcpus = .*: expected an integer >= 1"):
        kv.Scenario(n_vcpus=value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ((1, -1, 1), ValueError),
        ((1, float("nan"), 1), ValueError),
        ((1.0, 1.0, float("inf")), ValueError),
        ((True, 1, 1), TypeError),
        ((1, None, 1), TypeError),
        ({1, 2, 3}, TypeError),
        (3.0, TypeError),
        (b"abc", TypeError),
        (np.ones((3, 1)), ValueError),
        (np.array(1.0), ValueError),
        ((1, 1, 1, 1), ValueError),
    ],
    ids=repr,
)
def test_relevant_mix_shows_the_whole_mix_it_refuses(value, error):
    """The message quotes the mix as given, so (1, -1, 1) reads as such, not as a bare -1."""
    with pytest.raises(error) as info:
        kv.Scenario(relevant_mix=value)
    message = str(info.value)
    assert message.startswith(f"Scenario.relevant_mix = {value!r}: expected three finite")


def test_relevant_mix_accepts_any_three_numbers_and_stores_floats():
    """A list, a tuple of numpy numbers or an array: three floats, in order."""
    for mix in ([1, 2, 0], (np.int8(1), np.float32(2), 0.0), np.array([1, 2, 0])):
        assert kv.Scenario(relevant_mix=mix).relevant_mix == (1.0, 2.0, 0.0)


@pytest.mark.parametrize(
    ("value", "error"), [(5, TypeError), (None, TypeError), ("tree", ValueError)]
)
def test_memslot_lookup_is_one_of_two_names(value, error):
    """A non-string is the wrong type, an unknown name the wrong value; both list the names."""
    with pytest.raises(error, match=r"^Scenario\.memslot_lookup = .*'interval-tree'"):
        kv.Scenario(memslot_lookup=value)


@pytest.mark.parametrize(
    ("n_vcpus", "share"),
    [(8, 0.0), (1, 0.4), (3, 0.1), (1, 0.5)],
)
def test_a_vm_may_have_no_faulting_vcpu(n_vcpus, share):
    """faulting_share rounds to whole vCPUs (round half to even): 1 x 0.4 and 1 x 0.5 are none,
    and a scenario without faulting vCPUs is valid (its notifiers still run)."""
    scenario = kv.Scenario(n_vcpus=n_vcpus, faulting_share=share)
    assert scenario.n_faulting == 0
    assert scenario.mean_read_hold_us == scenario.read_hold_us


# -- the calibration table: PARAMETERS, parameter_table() ------------------------------------
def test_every_scenario_parameter_has_one_row_with_a_status_and_a_source():
    """One row per Scenario field, in a known status, each with a source; fitted and free
    parameters carry a plausible range that contains the default."""
    table = kv.scenario.parameter_table()
    fields = set(kv.Scenario.__dataclass_fields__)
    assert set(table["parameter"]) == fields and len(table) == len(fields)
    assert set(table["status"]) <= set(kv.scenario.STATUSES)
    assert table["source"].str.len().min() > 0
    default = kv.Scenario()
    for p in kv.scenario.PARAMETERS:
        if p.status in ("fitted", "free") and p.low is not None:
            assert p.low <= getattr(default, p.name) <= p.high, p.name
        if p.values:
            assert p.values == tuple(sorted(p.values)), p.name
            assert p.low <= p.values[0] and p.values[-1] <= p.high, p.name
            assert getattr(default, p.name) in p.values, p.name


def test_the_two_extrapolations_are_marked_free():
    """No source measures the in-lock share of the contention or the flush past 64 vCPUs."""
    status = kv.scenario.parameter_table().set_index("parameter")["status"]
    assert status["contention_in_lock_share"] == "free"
    assert status["tlb_flush_exponent"] == "free"
    assert status["read_hold_us"] == status["read_hold_per_vcpu_us"] == "fitted"
