"""Stage 1, the inputs: what goes into a run.

The memslot layout (``memslots``, ``layouts``), the kernel's rules table (``kernels``), the
notification streams by cause (``notifiers``), the parameters (``scenario``), the named setups
and VMs (``presets``) and real recordings read into the same shapes (``traces``).
"""
