"""The headline with its range: p99 stall and brownout per kernel over every free parameter.

Each bar spans what the metric takes as one parameter moves over its plausible range
(kvmviz.calibration), the others at their defaults; the dot is the default (seeds 0-3).

Usage: python examples/headline_ranges.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
table = kv.sensitivity(kv.Scenario(), seeds=(0, 1, 2, 3))  # 416 vCPUs, TDP MMU, qrwlock
axes = kv.plot.tornado(table)
axes[0].figure.suptitle(
    "416 vCPUs, TDP MMU: each bar one parameter over its plausible range (seeds 0-3)",
    fontsize="medium",
)
for path in kv.plot.save(axes[0].figure, f"{out}/headline-ranges"):  # never overwrites
    print(path)
