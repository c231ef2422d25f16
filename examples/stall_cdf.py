"""How long each vCPU fault stalls on mmu_lock, on each kernel (static setup): CDFs.

The gallery's figure 'stall-cdf': the same bytes as `kvmviz figures` writes.

Usage: python examples/stall_cdf.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("stall-cdf", seed=0)
for path in kv.plot.save(fig, f"{out}/stall-cdf"):  # refuses to overwrite a file
    print(path)
