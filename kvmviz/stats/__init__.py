"""Stage 3, the numbers: pure functions of a run, and the loops over runs.

``metrics`` measures one ``Run`` (waits, stalls, brownout, lock state at an instant);
``experiments`` is every loop over ``simulate()`` (kernels side by side, sweeps, sensitivity,
calibration, trace replay).
"""
