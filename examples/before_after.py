"""Before and after on the static setup: fault stalls and brownout on v5.12 and v5.15.

The gallery's figure 'before-after': the same bytes as `kvmviz figures` writes.

Usage: python examples/before_after.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("before-after", seed=0)
for path in kv.plot.save(fig, f"{out}/before-after"):  # refuses to overwrite a file
    print(path)
