"""Before and after: fault stalls and brownout on v5.12 and v5.15 (the README's headline).

Usage: python examples/before_after.py [OUT_DIR]  (default: a new temporary directory)
"""

import sys
import tempfile

import matplotlib.pyplot as plt

import kvmviz as kv

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kvmviz-")
kv.set_theme("paper")
scenario = kv.Scenario()  # 416 vCPUs, 12 TiB, 95% of the notifications spurious
runs = {kernel: kv.simulate(scenario, kernel=kernel, seed=0) for kernel in ("v5.12", "v5.15")}

fig, (ax_cdf, ax_brownout) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
kv.plot.stall_cdf(runs, ax=ax_cdf)
kv.plot.brownout_curve(runs, ax=ax_brownout)
for path in kv.plot.save(fig, f"{out}/before-after"):  # refuses to overwrite a file
    print(path)
