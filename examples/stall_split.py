"""The brownout split by what the faults waited behind, static and volatile setups side
by side: the part behind misses goes to 0 on v5.15, the part behind hits stays.

The gallery's figure 'stall-split': the same bytes as `kvmviz figures` writes.

Usage: python examples/stall_split.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("stall-split", seed=0)
for path in kv.plot.save(fig, f"{out}/stall-split"):  # refuses to overwrite a file
    print(path)
