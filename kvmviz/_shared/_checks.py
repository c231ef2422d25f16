"""Argument checks shared by the public API: refuse what a call cannot mean, by name.

Each check returns the value in its canonical type or raises ``TypeError`` / ``ValueError``
with one sentence naming the parameter, the value given and what was expected. Nothing is
coerced: ``1.7``, ``"5"`` and ``True`` are not seeds, ``"False"`` is not a boolean.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers

import numpy as np

__all__ = [
    "check_bool",
    "check_bool_array",
    "check_int",
    "check_number",
    "check_seed",
    "check_u64",
    "renamed_keywords",
    "strict_booleans",
]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as a Python int: a non-negative integer (numpy integers welcome).

    Raises
    ------
    TypeError
        For anything that is not an integer (``1.7``, ``"5"``, ``True``, ``None``).
    ValueError
        For a negative integer.
    """
    if not _is_int(seed):
        raise TypeError(f"{name} = {seed!r}: expected a non-negative integer")
    if seed < 0:
        raise ValueError(f"{name} = {seed!r}: expected a non-negative integer")
    return int(seed)


def check_int(value, name: str, *, minimum: int | None = None) -> int:
    """``value`` as a Python int (numpy integers welcome, booleans refused), ``>= minimum``."""
    if not _is_int(value):
        raise TypeError(f"{name} = {value!r}: expected an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} = {value!r}: expected an integer >= {minimum}")
    return int(value)


def check_number(value, name: str, *, minimum: float | None = None) -> float:
    """``value`` as a finite float (ints and numpy numbers welcome; booleans, strings refused)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} = {value!r}: expected a finite number")
    if not math.isfinite(value):
        raise ValueError(f"{name} = {value!r}: expected a finite number")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} = {value!r}: expected a finite number >= {minimum:g}")
    return float(value)


def check_bool(value, name: str) -> bool:
    """``value`` as a Python bool: only ``True``/``False`` (and numpy booleans) are booleans."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} = {value!r}: expected True or False")
    return bool(value)


def check_bool_array(values, name: str) -> np.ndarray:
    """``values`` as a 1-D numpy bool array; refuses strings, numbers, objects and other shapes.

    A list of Python/numpy booleans or a numpy bool array is accepted; ``["False"]``, ``[0, 1]``
    and ``[None]`` are refused (they would silently mean True or need a guess), and so are a
    lone boolean and nested lists (flattening them would pair flags with the wrong requests).
    """
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nesting: numpy cannot even make an array of it
        raise TypeError(f"{name}: expected a flat sequence of booleans") from None
    if array.size and array.dtype != np.bool_:
        raise TypeError(
            f"{name}: expected booleans (True/False or a numpy bool array), got dtype "
            f"{array.dtype} (e.g. {array.ravel()[0]!r})"
        )
    if array.ndim != 1:
        raise ValueError(
            f"{name}: expected a one-dimensional sequence of booleans, got shape {array.shape}"
        )
    return array.astype(bool)  # an empty list is float64 to numpy


def strict_booleans(function):
    """Decorate ``function`` so that every parameter annotated ``bool`` refuses a non-boolean.

    ``force="no"``, ``title="False"`` and ``transparent=0`` are truthy or falsy by accident,
    and ``force="no"`` used to overwrite a file. The decorated function raises ``TypeError``
    (:func:`check_bool`) naming the parameter before its body runs. The annotation is the
    only declaration needed: a parameter added later is checked too.
    """
    signature = inspect.signature(function)
    flags = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.annotation in ("bool", bool)
    ]
    if not flags:
        raise TypeError(f"{function.__qualname__} has no parameter annotated bool")

    @functools.wraps(function)
    def checked(*args, **kwargs):
        bound = signature.bind_partial(*args, **kwargs)
        for name in flags:
            if name in bound.arguments:
                check_bool(bound.arguments[name], name)
        return function(*args, **kwargs)

    checked.__strict_booleans__ = tuple(flags)
    return checked


def renamed_keywords(**renames: str):
    """Decorate a function so that it also accepts keyword arguments under their older names.

    ``renames`` maps each older name to the parameter's name now
    (``@renamed_keywords(n_events="n_notifications")``): a call that passes the older name
    passes the value under the new one. Passing both raises ``TypeError``. The signature shown
    (``inspect.signature``, ``help``) is the function's own, with the new names only.
    """

    def decorate(function):
        @functools.wraps(function)
        def renamed(*args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{function.__name__}() got both {new!r} and its older name "
                            f"{old!r}: pass {new!r} alone"
                        )
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return renamed

    return decorate


def check_u64(values, name: str) -> np.ndarray:
    """``values`` as a uint64 array of hvas (an ``unsigned long``: integers in ``[0, 2**64)``);
    floats, booleans and strings are refused by ``name``, citing the first offending value."""
    if not isinstance(values, np.ndarray):
        # Python ints may exceed int64 (hvas up to 2**64): go through objects, never floats.
        values = np.array(values, dtype=object)
        if values.size == 0:
            return np.zeros(values.shape, dtype=np.uint64)
    array = values
    if array.dtype == np.uint64:
        return array
    if array.dtype.kind == "i":
        if array.size and array.min() < 0:
            raise ValueError(f"{name}: hvas must be in [0, 2**64), got {int(array.min())}")
        return array.astype(np.uint64)
    if array.dtype.kind == "u":
        return array.astype(np.uint64)
    if array.dtype == object:
        flat = array.ravel()
        for v in flat:
            if not isinstance(v, int | np.integer) or isinstance(v, bool):
                raise TypeError(f"{name}: expected integer hvas, got {v!r}")
        for v in flat:
            if not 0 <= int(v) < 2**64:
                raise ValueError(f"{name}: hvas must be in [0, 2**64), got {int(v)}")
        return np.array([int(v) for v in flat], dtype=np.uint64).reshape(array.shape)
    raise TypeError(f"{name}: expected integer hvas, got dtype {array.dtype}")
