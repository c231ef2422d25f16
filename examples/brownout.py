"""Brownout: the share of the VM's vCPUs stalled on mmu_lock over time, per kernel (static setup).

The gallery's figure 'brownout': the same bytes as `kvmviz figures` writes.

Usage: python examples/brownout.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("brownout", seed=0)
for path in kv.plot.save(fig, f"{out}/brownout"):  # refuses to overwrite a file
    print(path)
