"""Eight vCPUs in a fault storm on v5.12: one notifier waits for mmu_lock, faults queue behind.

The gallery's figure 'lock-timeline-8-vcpus': the same bytes as `kvmviz figures` writes.

Usage: python examples/lock_timeline_8_vcpus.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")  # as `kvmviz figures --context paper`
fig = kv.gallery.render("lock-timeline-8-vcpus", seed=0)
for path in kv.plot.save(fig, f"{out}/lock-timeline-8-vcpus"):  # refuses to overwrite a file
    print(path)
