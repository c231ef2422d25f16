"""Three kernels side by side: callbacks taking mmu_lock, p99 fault stall, vCPU time stalled.

Usage: python examples/kernel_comparison.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import matplotlib.pyplot as plt

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
table = kv.compare_kernels(kv.Scenario(), seed=0)  # one row per kernel
print(table[["lock_taken", "p99_us", "brownout_mean"]].round(3).to_string())

fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
for ax, metric in zip(axes, ["lock_taken", "p99_us", "brownout_mean"], strict=True):
    kv.plot.kernel_bars(table, ax=ax, metric=metric)
for path in kv.plot.save(fig, f"{out}/kernel-comparison"):  # refuses to overwrite a file
    print(path)
