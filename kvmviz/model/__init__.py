"""Stage 2, the model: inputs in, tidy tables out.

``classify`` applies the kernel's rules to each callback; ``rwlock`` holds the lock policies;
``engine`` (with its compiled twin ``_closed_loop``) runs the vCPUs against the stream; ``run``
is the result, the tidy tables every later stage reads.
"""
