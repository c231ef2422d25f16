"""The house theme: semantic colours and the styles that tell kernels and policies apart."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

import kvmviz as kv
from kvmviz.engine import scripted_run


def test_policy_styles_tell_the_policies_apart():
    """The three policies' curves differ in colour and line style and are labelled by
    theme.POLICY_STYLES."""
    runs = {p: scripted_run([0, 1, 2], [False, True, False], [3, 1, 1], p) for p in kv.POLICIES}
    ax = kv.plot.stall_cdf(runs)
    styles = {(line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
    assert len(styles) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["qrwlock (fair)", "reader-pref (unfair)", "spinlock (exclusive)"]
    plt.close("all")
    assert np.isfinite(runs["qrwlock"].faults["wait_us"]).all()


def test_the_parts_of_a_brownout_differ_in_colour_and_hatch():
    """theme.BEHIND_STYLES: one style per part of metrics.BEHIND, each in a semantic colour
    (grey miss, vermilion hit, blue faults) and a hatch of its own, so the stacked bars of
    plot.stall_split survive grey-scale printing."""
    styles = kv.theme.BEHIND_STYLES
    assert tuple(styles) == kv.metrics.BEHIND
    assert [styles[p]["color"] for p in styles] == [
        kv.theme.COLORS["miss"],
        kv.theme.COLORS["hit"],
        kv.theme.COLORS["read"],
    ]
    assert len({styles[p]["hatch"] for p in styles}) == 3
    assert styles["miss"]["hatch"] == kv.theme.HATCHES["miss"]
