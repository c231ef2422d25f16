"""The same on the volatile setup: v5.15 still stalls, behind notifications that hit
guest memory.

The gallery's figure 'stall-by-kernel-volatile': the same bytes as `kvmviz figures` writes.

Usage: python examples/stall_by_kernel_volatile.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("stall-by-kernel-volatile", seed=0)
for path in kv.plot.save(fig, f"{out}/stall-by-kernel-volatile"):  # refuses to overwrite a file
    print(path)
