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
