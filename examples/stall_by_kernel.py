"""Each fault's stall and each kernel's brownout split by what it waited behind (static
setup), with the writers' mean wait.

The gallery's figure 'stall-by-kernel': the same bytes as `kvmviz figures` writes.

Usage: python examples/stall_by_kernel.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("stall-by-kernel", seed=0)
for path in kv.plot.save(fig, f"{out}/stall-by-kernel"):  # refuses to overwrite a file
    print(path)
