"""kvmviz.notifiers: the seeded notification streams, and the checks a hand-made stream passes.

``generate_stream`` draws a stream of events for a Scenario from its seed alone;
``stream_from_callbacks`` turns a hand-made or imported event table into the same form, and
``check_stream`` checks a stream handed to ``simulate``. Each refusal names the row or column.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import kvmviz as kv
from kvmviz import exercises
from kvmviz.notifiers import EVENT_KINDS, check_stream, generate_stream, stream_from_callbacks
from kvmviz.presets import VMM_HEAP

SCENARIO = kv.Scenario(n_vcpus=8, duration_us=100_000.0, notifier_rate_hz=20_000.0)


# -- generate_stream ----------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_stream_and_another_seed_another():
    """A stream is a function of the scenario and the seed: seed 5 twice is one stream, seed 6 is
    another."""
    a, b = generate_stream(SCENARIO, seed=5), generate_stream(SCENARIO, seed=5)
    pd.testing.assert_frame_equal(a, b)
    other = generate_stream(SCENARIO, seed=6)
    assert not a["t_us"].head(20).equals(other["t_us"].head(20))


def test_a_stream_is_one_row_per_event_in_time_order():
    """Columns event, cause, kind, t_us, hva_start, hva_end; events numbered 0.. in time order,
    about rate x duration of them (2000, within 5 standard deviations), every range non-empty."""
    stream = generate_stream(SCENARIO, seed=1)
    assert list(stream.columns) == ["event", "cause", "kind", "t_us", "hva_start", "hva_end"]
    assert stream["event"].tolist() == list(range(len(stream)))
    assert stream["t_us"].is_monotonic_increasing
    assert stream["t_us"].between(0, SCENARIO.duration_us).all()
    assert abs(len(stream) - 2000) < 5 * math.sqrt(2000)
    assert (
        stream["hva_start"].dtype == np.uint64 and (stream["hva_end"] > stream["hva_start"]).all()
    )
    assert set(stream["kind"]) <= set(EVENT_KINDS)


def test_spurious_events_miss_the_memslots_and_the_others_hit():
    """spurious_share=1: every event lies in the VMM's heap and misses every memslot;
    spurious_share=0: every event hits guest memory."""
    layout = SCENARIO.layout
    spurious = generate_stream(SCENARIO.replace(spurious_share=1.0), seed=2)
    assert set(spurious["cause"]) <= {"vmm_self", "vmm_aging"}
    assert (spurious["hva_start"] >= VMM_HEAP[0]).all() and (
        spurious["hva_end"] <= VMM_HEAP[1]
    ).all()
    assert not layout.hit_mask(spurious["hva_start"], spurious["hva_end"]).any()
    relevant = generate_stream(SCENARIO.replace(spurious_share=0.0), seed=2)
    assert set(relevant["cause"]) <= {"migration", "ksm", "guest_aging"}
    assert layout.hit_mask(relevant["hva_start"], relevant["hva_end"]).all()


def test_generate_stream_needs_a_scenario():
    """A dict of parameters is not a Scenario: refused by type."""
    with pytest.raises(TypeError, match=r"scenario must be a kvmviz\.Scenario, got dict"):
        generate_stream({"n_vcpus": 8})


def test_model_causes_agree_where_the_model_has_them():
    """The stream generator's own causes give the same kinds: VMM munmaps and page migration are
    pairs (remove_migration_pte() uses a plain set_pte_at()), a KSM merge two triples
    (write_protect_page() then replace_page())."""
    scenario = kv.Scenario(duration_us=200_000.0)
    only = {
        "vmm_self": scenario.replace(spurious_share=1.0, spurious_pair_share=1.0),
        "migration": scenario.replace(spurious_share=0.0, relevant_mix=(1.0, 0.0, 0.0)),
        "ksm": scenario.replace(spurious_share=0.0, relevant_mix=(0.0, 1.0, 0.0)),
    }
    kinds = {c: set(generate_stream(s, seed=1)["kind"]) for c, s in only.items()}
    assert kinds == {"vmm_self": {"pair"}, "migration": {"pair"}, "ksm": {"ksm_merge"}}
    # and the exercise generator says the same of every migration it asks about
    migration = [
        q for q in map(exercises.callback_order, range(60)) if "migrat" in q.question.lower()
    ]
    assert migration and all(tuple(q.answer) == EVENT_KINDS["pair"] for q in migration)


# -- stream_from_callbacks ----------------------------------------------------------------------
def test_an_event_table_becomes_a_stream_in_time_order():
    """Rows are sorted by time (ties kept in order), numbered 0.., given cause "unknown" unless
    they carry one, and the hvas become uint64."""
    frame = pd.DataFrame(
        {
            "t_us": [5.0, 1.0, 1.0],
            "kind": ["pair", "test_young", "move"],
            "hva_start": [0x3000, 0x1000, 0x2000],
            "hva_end": [0x4000, 0x2000, 0x3000],
        }
    )
    stream = stream_from_callbacks(frame)
    assert stream["event"].tolist() == [0, 1, 2]
    assert stream["kind"].tolist() == ["test_young", "move", "pair"]
    assert stream["t_us"].tolist() == [1.0, 1.0, 5.0]
    assert stream["cause"].tolist() == ["unknown"] * 3
    assert stream["hva_start"].dtype == np.uint64
    assert stream["hva_start"].tolist() == [0x1000, 0x2000, 0x3000]
    caused = stream_from_callbacks(frame.assign(cause=["a", "b", "c"]))
    assert caused["cause"].tolist() == ["b", "c", "a"]
    assert frame["t_us"].tolist() == [5.0, 1.0, 1.0]  # the input is not modified


_GOOD_EVENTS = pd.DataFrame(
    {"t_us": [1.0], "kind": ["pair"], "hva_start": [VMM_HEAP[0]], "hva_end": [VMM_HEAP[0] + 4096]}
)


@pytest.mark.parametrize(
    ("change", "error", "fragment"),
    [
        ({"kind": ["munmap"]}, ValueError, "event row 0: kind 'munmap' is not one of"),
        ({"kind": [None]}, ValueError, "event row 0: kind None"),
        ({"hva_start": [float(VMM_HEAP[0])]}, TypeError, "column hva_start: expected integer"),
        ({"hva_end": [-1]}, ValueError, "column hva_end: hvas must be in [0, 2**64)"),
        ({"hva_end": [VMM_HEAP[0]]}, ValueError, "event row 0: hva_start 0x555555554000 is not"),
        ({"hva_start": [True]}, TypeError, "column hva_start: expected integer hvas"),
        ({"t_us": [float("nan")]}, ValueError, "event row 0: t_us nan is not a time >= 0"),
        ({"t_us": [-1.0]}, ValueError, "event row 0: t_us -1.0 is not a time >= 0"),
        ({"t_us": ["1"]}, TypeError, "column t_us: expected numbers"),
    ],
)
def test_an_event_table_is_refused_by_row_and_column(change, error, fragment):
    """stream_from_callbacks names the row or column that cannot be an event; a float hva is
    refused rather than floored (1.5 is not an address)."""
    frame = _GOOD_EVENTS.assign(**change)
    with pytest.raises(error) as info:
        stream_from_callbacks(frame)
    assert fragment in str(info.value)


def test_an_event_table_must_be_a_frame_with_the_four_columns():
    """A list is not an event table, and one without hva_end says which columns it lacks."""
    with pytest.raises(TypeError, match=r"expected a pandas\.DataFrame of events, got list"):
        stream_from_callbacks([1.0, "pair", 0, 4096])
    with pytest.raises(ValueError, match=r"event table lacks columns \['hva_end'\]"):
        stream_from_callbacks(_GOOD_EVENTS.drop(columns="hva_end"))


# -- check_stream -------------------------------------------------------------------------------
def test_a_good_stream_is_returned_as_it_is():
    """check_stream returns the very frame it was given, generated or made by hand."""
    generated = generate_stream(SCENARIO, seed=0)
    assert check_stream(generated) is generated
    made = stream_from_callbacks(_GOOD_EVENTS)
    assert check_stream(made) is made


@pytest.mark.parametrize(
    ("stream", "error", "fragment"),
    [
        ("trace.txt", TypeError, "stream: expected a pandas.DataFrame"),
        (_GOOD_EVENTS, ValueError, "stream lacks columns ['event', 'cause']"),
        (
            stream_from_callbacks(_GOOD_EVENTS).assign(event=[0.5]),
            TypeError,
            "stream column event: expected integer ids, got dtype float64",
        ),
        (
            pd.concat([stream_from_callbacks(_GOOD_EVENTS)] * 2),
            ValueError,
            "stream column event: expected one row per event id, found repeats",
        ),
        (
            stream_from_callbacks(_GOOD_EVENTS).assign(hva_end=[VMM_HEAP[0]]),
            ValueError,
            "stream row 0: hva_start 0x555555554000 is not below hva_end 0x555555554000",
        ),
        (
            stream_from_callbacks(_GOOD_EVENTS).assign(t_us=[-2.0]),
            ValueError,
            "stream row 0: t_us -2.0 is not a time >= 0",
        ),
    ],
    ids=[
        "a path",
        "no event column",
        "float ids",
        "repeated event",
        "empty range",
        "negative time",
    ],
)
def test_check_stream_names_what_is_wrong(stream, error, fragment):
    """Each refusal is one sentence naming the column or the first bad row."""
    with pytest.raises(error) as info:
        check_stream(stream)
    assert fragment in str(info.value)
