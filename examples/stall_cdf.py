"""How long vCPU faults wait for mmu_lock, on each kernel: cumulative distributions.

Usage: python examples/stall_cdf.py [OUT_DIR]  (default: a new temporary directory)
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
kv.plot.stall_cdf(runs, ax=ax)
for path in kv.plot.save(fig, f"{out}/stall-cdf"):  # refuses to overwrite a file
    print(path)
