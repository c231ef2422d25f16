"""kvmviz._shared._checks: the argument checks every public function shares.

Nothing is coerced: a seed is a non-negative integer (numpy's welcome), a boolean is True or
False. Each refusal is one sentence naming the parameter and the value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import kvmviz as kv
from kvmviz import exercises, experiments, notifiers
from kvmviz._shared._checks import check_bool, check_bool_array, check_int, check_number, check_seed

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
        lambda seed: experiments.grid(SMALL, n_vcpus=[2], seeds=[seed], kernels=["v5.15"]),
        lambda seed: exercises.takes_lock_question(seed=seed),
        lambda seed: exercises.grant_order(seed=seed),
    ],
    ids=["simulate", "generate_stream", "experiments.grid", "takes_lock_question", "grant_order"],
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


@pytest.mark.parametrize(
    "call",
    [
        lambda seed: kv.compare_kernels(SMALL, seed=seed),
        lambda seed: experiments.grid(SMALL, n_vcpus=[2], seeds=[0, seed], kernels=["v5.15"]),
        lambda seed: kv.simulate(SMALL, "v5.12", "reader-pref", seed),
    ],
    ids=["compare_kernels", "experiments.grid second seed", "simulate positional"],
)
@pytest.mark.parametrize(
    ("seed", "error"),
    [
        (1.7, TypeError),
        ("5", TypeError),
        (True, TypeError),
        (np.float64(2), TypeError),
        (None, TypeError),
        (-1, ValueError),
        (np.int64(-3), ValueError),
    ],
)
def test_the_refusal_names_the_seed_and_says_what_a_seed_is(call, seed, error):
    """The error type separates "not an integer" (TypeError) from "a negative one"
    (ValueError); the message shows the value and asks for a non-negative integer."""
    with pytest.raises(error, match=r"seeds? = .*: expected a non-negative integer"):
        call(seed)


@pytest.mark.parametrize("seed", [np.int64(5), np.uint16(5), np.int8(5)])
def test_a_numpy_seed_is_the_same_seed(seed):
    """np.int64(5) seeds exactly the run that 5 seeds: same stream, same tables."""
    a, b = kv.simulate(SMALL, seed=5), kv.simulate(SMALL, seed=seed)
    assert b.seed == 5 and type(b.seed) is int
    pd.testing.assert_frame_equal(a.faults, b.faults)
    pd.testing.assert_frame_equal(a.notifiers, b.notifiers)
    pd.testing.assert_frame_equal(
        notifiers.generate_stream(SMALL, 5), notifiers.generate_stream(SMALL, seed)
    )


@pytest.mark.parametrize(
    ("values", "error", "fragment"),
    [
        (True, ValueError, "one-dimensional sequence of booleans, got shape ()"),
        ([[True], [False]], ValueError, "one-dimensional sequence of booleans, got shape (2, 1)"),
        ([[True], False], TypeError, "b: expected"),
        ("False", TypeError, "dtype <U5"),
        ([1.0], TypeError, "dtype float64"),
    ],
)
def test_bool_arrays_are_flat_lists_of_booleans(values, error, fragment):
    """A lone flag or a nested list is not a list of flags: flattening [[True], [False]] would
    pair each flag with the wrong request, so it is refused, naming the parameter."""
    with pytest.raises(error) as info:
        check_bool_array(values, "b")
    assert str(info.value).startswith("b: ") and fragment in str(info.value)


def test_an_empty_list_is_an_empty_bool_array():
    """[] has no flag to misread: it is a bool array of length 0 (numpy would say float64)."""
    out = check_bool_array([], "b")
    assert out.dtype == np.bool_ and out.shape == (0,)


# -- booleans across the public surface -------------------------------------------------------
# Methods called once per lock event inside the simulation: checked by their callers, whose
# own arguments are checked; a per-call check there would cost the engine, not a user.
HOT_PATHS = {"Counters.release", "LockPolicy.request", "LockPolicy.release"}
# Every public module (kv.<name>), the flat fronts included: what they re-export from the files
# behind them is their surface too.
MODULES = sorted(__import__("kvmviz")._MODULES)


def _public_callables():
    import importlib
    import inspect

    for stem in MODULES:
        module = importlib.import_module(f"kvmviz.{stem}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{stem}.{name}", obj
            elif inspect.isclass(obj) and obj.__module__.startswith("kvmviz."):  # ours
                for attr, value in vars(obj).items():
                    if inspect.isfunction(value) and not attr.startswith("_"):
                        yield f"{stem}.{name}.{attr}", value


def test_every_boolean_parameter_of_the_public_surface_refuses_a_non_boolean():
    """Every parameter annotated ``bool`` of every public function is checked: by the
    @strict_booleans decorator, or by an explicit check_bool in the body. A new one added
    without either fails here by name (``force="no"`` used to overwrite a file)."""
    import inspect

    unchecked = []
    for qualname, function in _public_callables():
        if qualname.split(".", 1)[1] in HOT_PATHS:
            continue
        flags = [
            n
            for n, p in inspect.signature(function).parameters.items()
            if p.annotation in ("bool", bool)
        ]
        covered = set(getattr(function, "__strict_booleans__", ()))
        source = inspect.getsource(inspect.unwrap(function))
        unchecked += [
            f"{qualname}({name})"
            for name in flags
            if name not in covered and f"check_bool({name}" not in source
        ]
    assert unchecked == []


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_the_public_booleans_refuse_strings_and_numbers(tmp_path, value):
    """The issue's cases and their kind: ``to_perfetto(force="no")``, ``plot.save``'s
    ``transparent``, ``render_all``'s ``title``, ``load_ftrace(lenient=...)``."""
    from matplotlib.figure import Figure

    from kvmviz import gallery, plot

    run = kv.simulate(SMALL, "v5.12")
    with pytest.raises(TypeError, match="force"):
        kv.to_perfetto(run, tmp_path / "x.json", force=value)
    with pytest.raises(TypeError, match="transparent"):
        plot.save(Figure(), tmp_path / "f", formats=("svg",), transparent=value)
    with pytest.raises(TypeError, match="title"):
        gallery.render_all(tmp_path / "g", title=value, only=[])
    with pytest.raises(TypeError, match="lenient"):
        kv.load_ftrace(tmp_path / "missing.txt", lenient=value)
    assert list(tmp_path.iterdir()) == []
