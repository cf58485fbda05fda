"""Pinned verdicts of histories paxosd itself writes, and of generated hard ones.

Stored in tests/data/histories (gzip-compressed JSON Lines, exactly as written):

- ``sim-cN-VARIANT-sS``: ``paxosd sim`` with N concurrent clients, the planted bug VARIANT
  and seed S (regenerate one with ``paxosd sim --seeds 1 --seed S --clients N --variant
  VARIANT --history-out DIR``, which saves the histories of runs with a violation; the
  correct runs were saved with ``python bench/checker.py --save-sim``, see
  docs/checker.md). reply-before-fsync at seed 1 shows only in the replicas' logs (the
  simulator's slot check), not in what the clients saw, so its histories are rightly
  judged ok; at 10 clients, seed 2, a lock's fencing breaks.
- ``chaos-correct-s3``: ``paxosd chaos --duration 8 --seed 3`` (with its probe writes,
  which belong to no workload).

Synthetic histories (`paxosd.check.synthetic`) are linearizable by construction, or carry
a stale read that no linearization can excuse: their verdicts are known without a checker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paxosd.check.history import build_history, load_history
from paxosd.check.linearizability import Verdict, check
from paxosd.check.models import APPEND, KV
from paxosd.check.synthetic import generate
from paxosd.check.workloads import judge_workloads, kv_result

from ._support import REPO_ROOT

HISTORIES = REPO_ROOT / "tests" / "data" / "histories"
TIME_LIMIT_S = 30.0
"""Generous: each takes well under a second; running out would fail the test."""

# file -> the workloads that fail (every other workload present must be ok)
STORED = {
    "sim-c10-correct-s1": set(),
    "sim-c50-correct-s1": set(),
    "sim-c100-correct-s1": set(),
    "sim-c10-unconfirmed-reads-s6": {"kv"},
    "sim-c50-unconfirmed-reads-s1": {"names"},
    "sim-c100-unconfirmed-reads-s1": {"names", "decisions"},
    "sim-c10-reply-before-fsync-s2": {"locks"},
    "sim-c50-reply-before-fsync-s1": set(),
    "sim-c100-reply-before-fsync-s1": set(),
    "chaos-correct-s3": set(),
}


@pytest.mark.parametrize("name", list(STORED))
def test_stored_paxosd_histories_keep_their_verdicts(name: str) -> None:
    path = HISTORIES / f"{name}.jsonl.gz"
    history = load_history(path)
    kv = kv_result(history, TIME_LIMIT_S)
    assert kv is not None
    assert kv.verdict is not Verdict.UNKNOWN, f"{path}: the kv check did not finish"
    verdicts = judge_workloads(history, kv=kv)
    assert set(verdicts) == {"kv", "locks", "names", "decisions"}
    failing = {workload for workload, result in verdicts.items() if not result.ok}
    assert failing == STORED[name], f"replay: paxosd check {path.relative_to(REPO_ROOT)}"


def test_the_stored_files_are_small() -> None:
    total = sum(path.stat().st_size for path in Path(HISTORIES).glob("*"))
    assert total < 2_000_000


# (seed, clients, operations, kind, share of unknown outcomes, planted bug)
SYNTHETIC = [
    (1, 10, 2000, "kv", 0.1, None),
    (1, 50, 2000, "kv", 0.1, None),
    (1, 100, 2000, "kv", 0.1, None),
    (2, 50, 2000, "kv", 0.4, None),
    (3, 50, 2000, "append", 0.2, None),
    (1, 10, 2000, "kv", 0.1, "stale-read"),
    (1, 50, 2000, "kv", 0.3, "stale-read"),
    (1, 100, 2000, "kv", 0.3, "stale-read"),
]


@pytest.mark.parametrize(
    ("seed", "clients", "operations", "kind", "unknown", "bug"),
    SYNTHETIC,
    ids=[f"{k}-c{c}-u{u}-{b or 'correct'}-s{s}" for s, c, _, k, u, b in SYNTHETIC],
)
def test_synthetic_histories_get_their_known_verdict(
    seed: int, clients: int, operations: int, kind: str, unknown: float, bug: str | None
) -> None:
    events = generate(
        seed, clients=clients, operations=operations, kind=kind, unknown=unknown, bug=bug
    )
    history = build_history(events)
    assert history.unknown > 0.5 * unknown * operations  # many outcomes really are unknown
    result = check(history, KV if kind == "kv" else APPEND, time_limit_s=TIME_LIMIT_S)
    expected = Verdict.NOT_LINEARIZABLE if bug else Verdict.LINEARIZABLE
    assert result.verdict is expected, (
        f"generate({seed}, clients={clients}, operations={operations}, kind={kind!r}, "
        f"unknown={unknown}, bug={bug!r})"
    )
    if bug:
        assert len(result.violations) == 1  # the key with the planted read, and only it
