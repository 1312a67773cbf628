"""MaskWatch worker: background analysis of uploaded footage."""

import os

# OpenMP threads that wait for work sleep instead of spinning: on a machine with other work
# (another analysis, a second segment), spinning threads took the cores from the work itself
# (issue 14: two analyses at once with two threads each, 0.39x the throughput of one after
# the other). OpenMP reads this when torch loads it, so it is set here, before any module of
# the worker imports torch; an operator's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
