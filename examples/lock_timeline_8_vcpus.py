"""Eight vCPUs in a fault storm on v5.12: one notifier waits for mmu_lock, faults queue behind.

Usage: python examples/lock_timeline_8_vcpus.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import matplotlib.pyplot as plt

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
# Faults every ~10 µs of guest time and 5,000 notifications a second: a busy small VM.
storm = kv.Scenario(n_vcpus=8, faulting_share=1.0, guest_run_us=10, notifier_rate_hz=5_000)
run = kv.simulate(storm, kernel="v5.12", seed=0)
# ~60 µs around the longest writer wait, widened so that no stall is cut off at an edge.
start, end = kv.metrics.busiest_window(run, 60)

fig, axes = plt.subplots(2, 1, figsize=(10, 4.6), height_ratios=[3, 1], layout="constrained")
kv.timelines.lock_timeline(run, start, end, ax=axes)
for path in kv.plot.save(fig, f"{out}/lock-timeline-8-vcpus"):  # refuses to overwrite a file
    print(path)
