"""What applying a single-row insert costs a replica, its database in memory (the simulator)
and in a file (a node): CPU per insert, applied through the router as a node applies it.

Not a test. Run: python bench/sql_apply_cost.py [--inserts 20000] [--rounds 3]

Each round applies `--inserts` requests (one INSERT each into a table with a UNIQUE column)
to a fresh machine of each kind, alternating, and reports the CPU time per insert; the
figure in docs/sql.md ("How fast") is the median of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from paxosd.service import Request, StateMachine, encode
from paxosd.service.namespace import Options
from paxosd.service.sql import SqlExecute, Statement
from paxosd.storage.sql_files import SqlFiles


def cost_us(options: Options, inserts: int) -> float:
    machine = StateMachine(options=options)

    def payload(seq: int, statement: Statement) -> bytes:
        request = Request(client_id="c", seq=seq, op=SqlExecute(statements=(statement,)))
        return encode(request)

    create = "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT UNIQUE, v TEXT)"
    machine.apply(1, payload(1, Statement(create)))
    insert = "INSERT INTO u (name, v) VALUES (?, ?)"
    payloads = [
        payload(seq, Statement(insert, (f"user{seq}", "x" * 100))) for seq in range(2, inserts + 2)
    ]
    started = time.process_time()
    for seq, data in enumerate(payloads, start=2):
        machine.apply(seq, data)
    return (time.process_time() - started) / inserts * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inserts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    memory: list[float] = []
    in_file: list[float] = []
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        for round_ in range(args.rounds):
            memory.append(cost_us(Options(), args.inserts))
            in_file.append(cost_us(Options(sql_files=SqlFiles(Path(tmp))), args.inserts))
            print(f"round {round_ + 1}: memory {memory[-1]:.1f} µs, file {in_file[-1]:.1f} µs")
    print(
        f"median CPU per insert: memory {statistics.median(memory):.1f} µs, "
        f"file {statistics.median(in_file):.1f} µs"
    )


if __name__ == "__main__":
    main()
