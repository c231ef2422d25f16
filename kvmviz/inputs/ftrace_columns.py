"""The columns of :func:`kvmviz.traces.load_ftrace`'s frame, filled a chunk of records at a time.

:class:`Columns` preallocates every column from the file's line count (an upper bound on its
records), copies each chunk of parsed records into them, trims them in place at the end and
gives them their dtypes (:meth:`Columns.frame`): the memory used is the frame's plus one
chunk, whatever the file size (``benchmarks/traces.py`` measures it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tracepoint_callbacks import CALLBACK_SOURCES, NOTIFIER_CALLBACKS

__all__ = ["Columns"]

# Columns of load_ftrace: name -> dtype. Codes of categorical columns are int32 (-1: missing);
# the nullable ones ("?") carry a mask, True where the record has no such field.
_DENSE = {
    "line": np.int64,
    "comm": np.int32,
    "pid": np.int32,
    "cpu": np.int32,
    "flags": np.int32,
    "ts": np.int64,  # exact: integer ns for seconds, the count for a raw clock
    "event": np.int32,
    "phase": np.int32,
}
_SPARSE = {  # group -> its columns, in the order of the parsed tuples
    "hva": {
        "hva_start": np.uint64,
        "hva_end": np.uint64,
        "callback": np.int32,
        "callback_source": np.int32,
    },
    "fault": {"vcpu": np.int64, "rip": np.uint64, "address": np.uint64, "error_code": np.uint64},
    "lock": {"lock": np.int32, "lock_flags": np.int32, "ret": np.int64},
    "mark": {"mark": np.int32},
}
_CODED = frozenset({"callback", "callback_source", "lock", "lock_flags", "mark"})  # missing: -1
_INTERNED = ("comm", "flags", "event", "lock", "lock_flags", "mark", "phase")  # codes by value


class Columns:
    """The frame's columns, preallocated for ``capacity`` records and filled a chunk at a time.

    Records are gathered in per-chunk Python lists (the reader flushes them every chunk of
    records), then copied into the final arrays, so the memory is that of the frame plus one
    chunk. ``capacity`` is
    the file's line count (an upper bound on records); the arrays are trimmed in place at the
    end, and grown if the file turns out longer (it grew while being read).
    """

    def __init__(self, capacity: int, keep_text: bool) -> None:
        self.keep_text = keep_text
        self.rows: list[tuple] = []  # (line, comm, pid, cpu, flags, ts, event, phase)
        self.texts: list[str] = []
        self.sparse: dict[str, list] = {group: [] for group in _SPARSE}
        self.cap = max(int(capacity), 16)
        self.n = 0  # records already copied into the arrays
        self.arrays: dict[str, np.ndarray] = {}
        # The values of each categorical column -> their codes (the reader interns with
        # dict.setdefault(value, len(dict)): one C call per lookup).
        self.interned: dict[str, dict] = {name: {} for name in _INTERNED}
        for name, dtype in _DENSE.items():
            self.arrays[name] = np.zeros(self.cap, dtype=dtype)
        for columns in _SPARSE.values():
            for name, dtype in columns.items():
                if name in _CODED:
                    self.arrays[name] = np.full(self.cap, -1, dtype=dtype)
                else:
                    self.arrays[name] = np.zeros(self.cap, dtype=dtype)
                    self.arrays[name + "?"] = np.ones(self.cap, dtype=bool)
        if keep_text:
            self.arrays["text"] = np.full(self.cap, "", dtype=object)

    def _grow(self, needed: int) -> None:
        cap = max(needed, self.cap + self.cap // 2)
        for name, old in self.arrays.items():
            fill = True if name.endswith("?") else -1 if name in _CODED else 0
            new = np.full(cap, fill if old.dtype != object else "", dtype=old.dtype)
            new[: self.n] = old[: self.n]
            self.arrays[name] = new
        self.cap = cap

    def flush(self) -> None:
        rows, m, n = self.rows, len(self.rows), self.n
        if not m:
            return
        if n + m > self.cap:
            self._grow(n + m)
        arrays = self.arrays
        for name, values in zip(_DENSE, zip(*rows, strict=True), strict=True):
            arrays[name][n : n + m] = values
        if self.keep_text:
            arrays["text"][n : n + m] = self.texts
        for group, columns in _SPARSE.items():
            entries = self.sparse[group]
            if not entries:
                continue
            idx = n + np.fromiter((e[0] for e in entries), dtype=np.int64, count=len(entries))
            for k, name in enumerate(columns, start=1):
                column = [e[k] for e in entries]
                at = idx
                if None in column:  # absent fields: old kvm_page_fault (no vcpu, rip), locks
                    keep = np.fromiter((v is not None for v in column), bool, count=len(column))
                    column = [v for v in column if v is not None]
                    at = idx[keep]
                arrays[name][at] = column
                if name not in _CODED:
                    arrays[name + "?"][at] = False
            entries.clear()
        self.n += m
        rows.clear()
        self.texts.clear()

    def finish(self) -> dict[str, np.ndarray]:
        """The arrays, trimmed to the records (in place: no copy of the columns)."""
        self.flush()
        for array in self.arrays.values():
            array.resize(self.n, refcheck=False)  # owned, never viewed: realloc shrinks it
        return self.arrays

    def frame(self, raw_clock: bool | None) -> pd.DataFrame:
        """The frame of the records, its columns given their dtypes (no copy of the arrays).

        Parameters
        ----------
        raw_clock : bool or None
            The timestamps are raw clock counts (no seconds, no µs); None without records.

        Returns
        -------
        pandas.DataFrame
            The columns of :func:`kvmviz.traces.load_ftrace`, in file order.
        """
        arrays = self.finish()
        interned = self.interned

        def nullable(name: str):
            return pd.arrays.IntegerArray(arrays.pop(name), arrays.pop(name + "?"))

        def coded(name: str):
            return pd.Categorical.from_codes(arrays.pop(name), categories=list(interned[name]))

        ts_all = arrays.pop("ts")
        data = {
            "line": arrays.pop("line"),
            "comm": coded("comm"),
            "pid": arrays.pop("pid"),
            "cpu": arrays.pop("cpu"),
            "flags": coded("flags"),
            # Seconds as a float (the count for a raw clock), as before; t_ns holds them exactly.
            "t_s": ts_all.astype(np.float64) if raw_clock else ts_all / 1e9,
            "t_ns": ts_all,  # exact; the count for a raw clock, as t_s
            # A raw count has no unit kvmviz can know (TSC ticks, events, jiffies): no µs.
            "t_us": np.full(len(ts_all), np.nan) if raw_clock else _us_since_first(ts_all),
            "event": coded("event"),
        }
        if self.keep_text:
            data["text"] = arrays.pop("text")
        data["hva_start"] = nullable("hva_start")
        data["hva_end"] = nullable("hva_end")
        data["callback"] = pd.Categorical.from_codes(
            arrays.pop("callback"), list(NOTIFIER_CALLBACKS)
        )
        sources = arrays.pop("callback_source")
        data["callback_source"] = pd.Categorical.from_codes(sources, list(CALLBACK_SOURCES))
        for name in ("vcpu", "rip", "address", "error_code"):
            data[name] = nullable(name)
        data["lock"] = coded("lock")
        data["lock_flags"] = coded("lock_flags")
        data["ret"] = nullable("ret")
        data["mark"] = coded("mark")
        data["phase"] = coded("phase")
        return pd.DataFrame(data, copy=False)


def _us_since_first(ts: np.ndarray) -> np.ndarray:
    """µs since the earliest timestamp, from exact integer ns: the same for any offset."""
    if not len(ts):
        return np.zeros(0)
    return (ts - ts.min()) / 1e3  # int64 differences, exact; one rounding to float
