"""kvmviz._checks: the argument checks every public function shares.

Nothing is coerced: a seed is a non-negative integer (numpy's welcome), a boolean is True or
False. Each refusal is one sentence naming the parameter and the value.
"""

from __future__ import annotations

import numpy as np
import pytest

import kvmviz as kv
from kvmviz import exercises, notifiers, sweep
from kvmviz._checks import check_bool, check_bool_array, check_int, check_number, check_seed

SMALL = kv.Scenario(n_vcpus=4, duration_us=200.0)


@pytest.mark.parametrize("seed", [0, 7, np.int64(3), np.uint32(2), 2**70])
def test_seeds_that_are_seeds(seed):
    """Non-negative integers, numpy's included, come back as Python ints of the same value."""
    assert check_seed(seed) == int(seed) and type(check_seed(seed)) is int


@pytest.mark.parametrize(
    ("seed", "error"),
    [(1.7, TypeError), ("5", TypeError), (True, TypeError), (None, TypeError), (-1, ValueError)],
)
def test_seeds_that_are_not(seed, error):
    """1.7, "5", True and None are not seeds; -1 is not a valid one."""
    with pytest.raises(error, match=r"seed = .*non-negative integer"):
        check_seed(seed)


@pytest.mark.parametrize(
    "call",
    [
        lambda seed: kv.simulate(SMALL, seed=seed),
        lambda seed: notifiers.generate_stream(SMALL, seed),
        lambda seed: sweep.grid(SMALL, n_vcpus=[2], seeds=[seed], kernels=["v5.15"]),
        lambda seed: exercises.takes_lock_question(seed=seed),
        lambda seed: exercises.grant_order(seed=seed),
    ],
    ids=["simulate", "generate_stream", "sweep.grid", "takes_lock_question", "grant_order"],
)
@pytest.mark.parametrize("seed", [1.7, "5", True, -1])
def test_every_seeded_function_refuses_bad_seeds(call, seed):
    """Everywhere a seed is taken, the same four values are refused, naming the seed."""
    with pytest.raises((TypeError, ValueError), match="seed"):
        call(seed)


def test_numbers_and_integers():
    """check_number wants a finite real, check_int an integer; neither takes a boolean."""
    assert check_number(np.float32(2.5), "x") == 2.5
    assert check_int(np.int16(3), "n", minimum=1) == 3
    for bad in (True, "1", float("nan"), float("inf")):
        with pytest.raises((TypeError, ValueError), match="x = "):
            check_number(bad, "x")
    with pytest.raises(ValueError, match=r"n = 0: expected an integer >= 1"):
        check_int(0, "n", minimum=1)
    with pytest.raises(TypeError, match=r"n = 1\.0"):
        check_int(1.0, "n")


def test_booleans():
    """True, False and numpy booleans are booleans; "False", 0 and None are not."""
    assert check_bool(np.True_, "b") is True
    assert check_bool_array([True, np.False_], "b").tolist() == [True, False]
    for bad in ("False", 0, None):
        with pytest.raises(TypeError, match="b = "):
            check_bool(bad, "b")
    for bad in (["False"], [0, 1], [None]):
        with pytest.raises(TypeError, match="b: expected booleans"):
            check_bool_array(bad, "b")
