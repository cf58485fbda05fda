"""Instructions per command of the engine's commit path, counted by valgrind's callgrind: a
measure that other work on a shared machine does not change, where wall-clock ratios do.

It runs bench/engine_core.py's `run` (3 replicas under the shared driver, in one process) at
two sizes and divides the difference in executed instructions by the difference in commands,
so the interpreter's start-up and imports cancel out. `--src` points at another checkout's
`src` directory to measure an older commit with the same script:

    .venv/bin/python bench/engine_instructions.py                      # this checkout
    .venv/bin/python bench/engine_instructions.py --src /tmp/old/src    # another one

Each size runs under callgrind (about 50 times slower than natively): the defaults take a
few minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROGRAM = """
import sys
sys.path.insert(0, {bench!r})
import engine_core
engine_core.run({commands}, {outstanding}, {batch})
"""


def instructions(src: Path, commands: int, outstanding: int, batch: int) -> int:
    """Instructions executed by one interpreter running `commands` commands."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
        program = PROGRAM.format(
            bench=str(BENCH), commands=commands, outstanding=outstanding, batch=batch
        )
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                program,
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        assert match is not None, "callgrind wrote no totals"
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=BENCH.parent / "src")
    parser.add_argument("--commands", type=int, default=6000, help="the larger size")
    parser.add_argument("--outstanding", type=int, default=256)
    args = parser.parse_args()
    small = args.commands // 3
    print(f"src: {args.src}")
    for label, batch in (("batching on (2048 a slot)", 2048), ("batching off (1 a slot)", 1)):
        low = instructions(args.src, small, args.outstanding, batch)
        high = instructions(args.src, args.commands, args.outstanding, batch)
        per_command = (high - low) / (args.commands - small)
        print(f"{label}: {per_command:,.0f} instructions per command")


if __name__ == "__main__":
    main()
