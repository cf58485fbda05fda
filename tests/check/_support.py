"""Helpers shared by the checker tests: where the test vectors live, and a brute-force oracle.

The test vectors (real Jepsen histories with known verdicts) live in ``tests/data``.
``PAXOSD_TESTDATA`` overrides the location; it names the directory that holds
``linearizability/``, and a wrong path is an error, not a skip.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from paxosd.check.history import Operation
from paxosd.check.models import Model

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTDATA_ENV = "PAXOSD_TESTDATA"
MISSING_REASON = (
    f"test vectors not found at {REPO_ROOT / 'tests/data/linearizability'}; "
    f"set {TESTDATA_ENV} to the directory holding linearizability/"
)


def linearizability_dir() -> Path | None:
    env = os.environ.get(TESTDATA_ENV)
    if env:
        path = Path(env) / "linearizability"
        if not path.is_dir():
            raise FileNotFoundError(f"{TESTDATA_ENV}={env} has no linearizability/ directory")
        return path
    path = REPO_ROOT / "tests" / "data" / "linearizability"
    return path if path.is_dir() else None


def vector_cases(family: str) -> list[object]:
    """``pytest.param(path, expected_linearizable)`` per row of ``family/expected.tsv``."""
    base = linearizability_dir()
    if base is None:
        skip = pytest.mark.skip(reason=MISSING_REASON)
        return [pytest.param(None, None, id=f"{family}-missing", marks=skip)]
    rows = (base / family / "expected.tsv").read_text().splitlines()[1:]
    cases: list[object] = []
    for row in rows:
        if not row.strip():
            continue
        name, verdict = row.split("\t")
        cases.append(pytest.param(base / family / name, verdict.strip() == "true", id=name))
    return cases


def brute_force_linearizable(ops: Sequence[Operation], model: Model, keyed: bool = False) -> bool:
    """The definition, checked literally: some subset of the unknown-outcome operations,
    together with all completed ones, has an order that respects real time (A before B
    whenever A returned before B was invoked) and that the model accepts step by step.
    With ``keyed`` the model describes one key and every key has its own state (the kv
    models); no partitioning is done. Exponential; for a handful of operations only."""
    known = [op for op in ops if op.known]
    unknown = [op for op in ops if not op.known]
    for size in range(len(unknown) + 1):
        for extra in itertools.combinations(unknown, size):
            chosen = known + list(extra)
            for order in itertools.permutations(chosen):
                if _respects_real_time(order) and _legal(order, model, keyed):
                    return True
    return False


def _respects_real_time(order: Sequence[Operation]) -> bool:
    for i, later in enumerate(order):
        for earlier in order[i + 1 :]:
            if earlier.ret < later.call:  # `earlier` finished before `later` began
                return False
    return True


def _legal(order: Sequence[Operation], model: Model, keyed: bool) -> bool:
    states: dict[object, object] = {}
    for op in order:
        key = op.key if keyed else None
        ok, states[key] = model.step(states.get(key, model.init()), op)
        if not ok:
            return False
    return True


def op(
    index: int,
    f: str,
    value: object = None,
    output: object = None,
    *,
    call: float,
    ret: float = math.inf,
    process: int | None = None,
    key: object = None,
    known: bool | None = None,
) -> Operation:
    """A hand-made operation; ``ret=inf`` (the default) makes its outcome unknown."""
    is_known = ret != math.inf if known is None else known
    return Operation(
        index=index,
        process=index if process is None else process,
        f=f,
        key=key,
        input=value,
        output=output if is_known else None,
        call=call,
        ret=ret,
        known=is_known,
        invoke_line=index + 1,
    )
