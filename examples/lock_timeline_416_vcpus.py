"""The static setup on v5.12 around the longest writer wait: 416 vCPUs, grouped in lanes.

The gallery's figure 'lock-timeline-416-vcpus': the same bytes as `kvmviz figures` writes.

Usage: python examples/lock_timeline_416_vcpus.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("lock-timeline-416-vcpus", seed=0)
for path in kv.plot.save(fig, f"{out}/lock-timeline-416-vcpus"):  # refuses to overwrite a file
    print(path)
