"""416 vCPUs on v5.12: with this many lanes, vCPUs are grouped and each lane shows shares.

Usage: python examples/lock_timeline_416_vcpus.py [OUT_DIR]  (default: a new temporary dir)
"""

import sys
import tempfile

import matplotlib.pyplot as plt

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
run = kv.simulate(kv.Scenario(), kernel="v5.12", seed=0)  # 416 vCPUs, 12 TiB
# ~3 ms around the longest writer wait, widened so that no stall is cut off at an edge.
start, end = kv.metrics.busiest_window(run, 3_000)

fig, axes = plt.subplots(2, 1, figsize=(10, 6), height_ratios=[3, 1], layout="constrained")
kv.timelines.lock_timeline(run, start, end, ax=axes, groups=8)  # 8 lanes of grouped vCPUs
for path in kv.plot.save(fig, f"{out}/lock-timeline-416-vcpus"):  # refuses to overwrite
    print(path)
