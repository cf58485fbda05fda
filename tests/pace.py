"""How much of a CPU the tests get right now, for the few tests whose budgets are seconds of
wall time (how fast a failover is, how long a node takes to catch up).

On a machine shared with other work a process gets a fraction of a core, and a budget that
holds on an idle machine fails for no fault of the code. Loosening the budget for everyone
would hide a real slowdown; instead a budget is multiplied by the slowdown measured when it is
checked: the wall time a short busy loop takes over the CPU time it used (1 on an idle core,
about N when N runnable processes share each core), at most `slowdown_max`.
"""

from __future__ import annotations

import time

sample_cpu_s = 0.05
sample_wall_s_max = 2.0
slowdown_max = 8.0


def slowdown() -> float:
    """Wall time over CPU time of a short busy loop, now (1 on an idle machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    while (
        time.process_time() - cpu < sample_cpu_s and time.perf_counter() - wall < sample_wall_s_max
    ):
        sum(range(1000))
    used = max(time.process_time() - cpu, 1e-6)
    return min(slowdown_max, max(1.0, (time.perf_counter() - wall) / used))


def within(elapsed_s: float, budget_s: float) -> bool:
    """Whether `elapsed_s` fits `budget_s` on this machine as loaded as it is now (measured
    only when the idle-machine budget is exceeded)."""
    return elapsed_s < budget_s or elapsed_s < budget_s * slowdown()


class Deadline:
    """A budget of `budget_s` seconds on an idle machine, from now, scaled by the slowdown
    when it runs out."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.started = time.monotonic()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def passed(self) -> bool:
        return not within(self.elapsed_s(), self.budget_s)
