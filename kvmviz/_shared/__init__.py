"""Private helpers every stage may use: argument checks, atomic files, signals, streams,
progress reports, numba and how numbers are written in prose."""
