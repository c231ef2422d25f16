"""Stage 4, the views: draw what they are handed, never simulate.

``theme`` (colours, styles), ``address_axis`` (the memslot maps' shared axis), ``plot`` (static
figures), ``timelines``, ``animate`` and ``export`` (a run as a Perfetto trace).
"""
