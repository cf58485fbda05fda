"""How long the lab's coach takes to answer, from every state of every tour and from random
reachable states of the default page (`paxosd lab play paxos`): wall time per answer, p50 and
max, with how deep each answer checked.

.venv/bin/python bench/lab_coach.py                 # every tour, and 100 random states
.venv/bin/python bench/lab_coach.py --random 10 --seed 7 --tours ""   # a quick look

Each tour is played as a learner plays it ("show me", "next", asking the coach where the tour
asks), and the coach is asked at every state the tour passes through, in order, with the
session's memory of earlier questions (as on the page). Each random state is a fresh session
of the default page, reached by a random walk of 0 to 20 clicks (any action the page offers:
propose, deliver, drop, duplicate, crash, restart, partition, heal, timers), asked once. The
times are wall time on whatever machine runs this, loaded or not: say which when quoting them.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paxosd.lab.play import tours
from paxosd.lab.play.coach import Advice, advise, coach_seconds_default
from paxosd.lab.play.session import PlayConfig, Session

walk_steps_max = 20


def timed(session: Session, seconds: float) -> tuple[float, Advice]:
    began = time.perf_counter()
    advice = advise(session, seconds)
    return time.perf_counter() - began, advice


def tour_states(key: str, seconds: float) -> list[dict[str, Any]]:
    """Ask the coach at each state a tour passes through, as a learner would meet them."""
    tour = tours.TOURS[key]
    session = Session(tour.config)
    progress = tours.start(session, tour)
    found: list[dict[str, Any]] = []
    asked: set[int] = set()

    def ask() -> None:
        for step in range(session.cursor + 1):
            if step in asked:
                continue
            asked.add(step)
            cursor = session.cursor
            session.goto(step)
            took, advice = timed(session, seconds)
            found.append(_row(f"tour {key} step {step}", took, advice))
            session.goto(cursor)

    for _ in range(len(tour.stages) * 2):
        ask()
        if progress.finished:
            break
        stage = progress.current
        if stage.done is None:
            tours.advance(session, progress, next_pressed=True)
        elif stage.show:
            session.apply_all(list(stage.show))
            tours.advance(session, progress)
        else:
            if stage.coach_at is not None:
                session.goto(stage.coach_at)
            _, advice = timed(session, seconds)
            tours.heard(progress, session.cursor, advice)
            tours.advance(session, progress)
    ask()
    return found


def random_states(count: int, seed: int, seconds: float) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    found: list[dict[str, Any]] = []
    for number in range(count):
        session = Session(PlayConfig("paxos"))
        for _ in range(rng.randint(0, walk_steps_max)):
            actions = session.actions()
            if not actions:
                break
            session.apply(rng.choice(actions).id)
        took, advice = timed(session, seconds)
        found.append(_row(f"random {number} ({session.cursor} clicks)", took, advice))
    return found


def _row(where: str, took: float, advice: Advice) -> dict[str, Any]:
    return {
        "where": where,
        "seconds": round(took, 3),
        "outlook": advice.outlook,
        "complete": advice.complete,
        "depth": advice.depth,
        "states": advice.states,
    }


def summary(name: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"{name}: none"
    times = sorted(r["seconds"] for r in rows)
    complete = sum(r["complete"] for r in rows)
    shallow = min((r["depth"] for r in rows if not r["complete"]), default=None)
    deepest = f", the shallowest partial answer checked {shallow} steps" if shallow else ""
    return (
        f"{name}: {len(rows)} answers, p50 {statistics.median(times):.2f} s, max "
        f"{times[-1]:.2f} s; {complete} complete{deepest}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tours", default=",".join(tours.TOURS), help='comma list; "" none')
    parser.add_argument("--random", type=int, default=100, help="random states to ask from")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=coach_seconds_default)
    parser.add_argument("--json", help="write every answer's row here")
    args = parser.parse_args()
    tour_rows: list[dict[str, Any]] = []
    for key in [k for k in args.tours.split(",") if k]:
        rows = tour_states(key, args.seconds)
        print(summary(f"tour {key}", rows), flush=True)
        tour_rows.extend(rows)
    random_rows = random_states(args.random, args.seed, args.seconds)
    print(summary("every tour state", tour_rows))
    print(summary(f"{args.random} random states of lab play paxos", random_rows))
    if args.json:
        Path(args.json).write_text(json.dumps(tour_rows + random_rows, indent=1))


if __name__ == "__main__":
    main()
