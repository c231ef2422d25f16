"""The fault stalls of each kernel in one static figure: distributions, and p99 with writer wait.

Usage: python examples/stall_by_kernel.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
scenario = kv.Scenario()  # 416 vCPUs, 12 TiB, mostly spurious notifications
runs = {k: kv.simulate(scenario, kernel=k, seed=0) for k in kv.KERNELS}

ax = kv.plot.stall_by_kernel(runs)  # left: stall CDFs; right: p99 bars, writers' wait under each
for path in kv.plot.save(ax.figure, f"{out}/stall-by-kernel"):  # refuses to overwrite a file
    print(path)
