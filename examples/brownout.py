"""Brownout: the share of the VM's vCPUs stalled on mmu_lock over time, on each kernel.

Usage: python examples/brownout.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import matplotlib.pyplot as plt

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
scenario = kv.Scenario()  # 416 vCPUs, 12 TiB, 95% of the notifications spurious
runs = {kernel: kv.simulate(scenario, kernel=kernel, seed=0) for kernel in kv.KERNELS}

fig, ax = plt.subplots(figsize=(6.4, 4), layout="constrained")
kv.plot.brownout_curve(runs, ax=ax, bin_us=200)  # averaged over 200 µs windows
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)  # below the axes
for path in kv.plot.save(fig, f"{out}/brownout"):  # refuses to overwrite a file
    print(path)
