"""Three kernels on the static setup: callbacks taking mmu_lock, p99 stall per fault, brownout.

The gallery's figure 'kernel-comparison': the same bytes as `kvmviz figures` writes.

Usage: python examples/kernel_comparison.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("kernel-comparison", seed=0)
for path in kv.plot.save(fig, f"{out}/kernel-comparison"):  # refuses to overwrite a file
    print(path)
