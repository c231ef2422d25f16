"""The headline with its range (the README's figure): brownout and p99 stall per fault per
kernel on the static and the volatile setup, each bar one free parameter over its plausible
range, the dot its default (seeds 0-3).

The gallery's figure 'headline-ranges': the same bytes as `kvmviz figures` writes.

Usage: python examples/headline_ranges.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("headline-ranges", seed=0)
for path in kv.plot.save(fig, f"{out}/headline-ranges"):  # refuses to overwrite a file
    print(path)
