"""Time and peak memory of ``paxosd check`` per history, beside the previous checker and,
where it can be built, Porcupine.

Each run is a fresh process, measured from outside (wall time, and peak resident memory
from ``wait4``), so the numbers are what a user of the command sees, start-up included.

- **paxosd**: this tree's ``paxosd check FILE --json`` (default budgets, one process).
- **previous**: the checker as of ``--baseline`` (a git revision; default: the last one
  before the interleaved search), run from a ``git archive`` of that revision's ``src/``.
  It gets the same time limit and at most ``--baseline-memory`` of address space, so a
  run that would eat the machine ends as "out of memory" instead.
- **porcupine** (optional, ``--porcupine DIR`` naming a checkout of
  github.com/anishathalye/porcupine and Debian's ``golang-go``): a small Go driver, written
  here, reads the history as Porcupine operation JSON (``dump_porcupine``) and calls
  ``porcupine.CheckOperationsTimeout`` with a key-value model partitioned by key. Built in
  a temporary directory; nothing of Porcupine's is copied into paxosd.

Histories: the Porcupine/Jepsen test vectors in tests/data/linearizability, the stored
``paxosd sim`` histories in tests/data/histories (their kv part: the previous checker and
Porcupine judge one model), and synthetic ones from `paxosd.check.synthetic` (50 and 100
clients, 2,000 operations over 10 keys, many unknown outcomes, with and without a planted
stale read).

    .venv/bin/python bench/checker.py [--only c50] [--time-limit 20] [--porcupine DIR]
    .venv/bin/python bench/checker.py --save-sim tests/data/histories   # regenerate them
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from paxosd.check.history import (  # noqa: E402
    build_history,
    dump_jsonl,
    dump_porcupine,
    load_history,
)
from paxosd.check.synthetic import generate  # noqa: E402
from paxosd.check.workloads import is_kv  # noqa: E402

GNU_TIME = "/usr/bin/time"

BASELINE_REVISION = "44f1c70"
"""The last revision with the one-key-at-a-time checker (Wing & Gong with Lowe's cache)."""

VECTORS = REPO / "tests" / "data" / "linearizability"
HISTORIES = REPO / "tests" / "data" / "histories"


@dataclass(frozen=True)
class Case:
    name: str
    path: Path  # the file every checker reads
    porcupine_model: str  # "append" or "kv"


@dataclass(frozen=True)
class Measured:
    verdict: str
    wall_s: float
    cpu_s: float
    peak_mb: float
    check_s: float | None = None  # the search alone, as the checker reports it


def cases(work: Path) -> list[Case]:
    out = [
        Case("porcupine c10-bad (append)", VECTORS / "kv" / "c10-bad.txt", "append"),
        Case("porcupine c50-ok (append)", _unzip(VECTORS / "kv" / "c50-ok.txt.gz", work), "append"),
        Case(
            "porcupine c50-bad (append)", _unzip(VECTORS / "kv" / "c50-bad.txt.gz", work), "append"
        ),
    ]
    for path in sorted(HISTORIES.glob("sim-*.jsonl.gz")):
        name = path.name.removesuffix(".jsonl.gz")
        out.append(Case(f"{name} (kv part)", _kv_part(path, work), "kv"))
    synthetic = [
        (1, 50, "kv", 0.1, None),
        (1, 50, "kv", 0.3, None),
        (1, 50, "kv", 0.3, "stale-read"),
        (1, 100, "kv", 0.3, "stale-read"),
        (3, 50, "append", 0.2, None),
    ]
    for seed, clients, kind, unknown, bug in synthetic:
        name = f"synthetic {kind} c{clients} u{unknown} {bug or 'correct'} s{seed}"
        events = generate(
            seed, clients=clients, operations=2000, kind=kind, unknown=unknown, bug=bug
        )
        path = work / (name.replace(" ", "-") + ".jsonl")
        path.write_text(dump_jsonl(events))
        out.append(Case(name, path, "append" if kind == "append" else "kv"))
    return out


def _unzip(path: Path, work: Path) -> Path:
    target = work / path.name.removesuffix(".gz")
    target.write_bytes(gzip.decompress(path.read_bytes()))
    return target


def _kv_part(path: Path, work: Path) -> Path:
    """The kv events of a workload history, as their own history (what the previous
    checker and Porcupine can read), like the kv-history.jsonl of `paxosd chaos`."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    kept = [line for line in lines if _is_kv_line(line)]
    target = work / path.name.replace(".jsonl.gz", "-kv.jsonl")
    target.write_text("".join(kept))
    return target


def _is_kv_line(line: str) -> bool:
    event = json.loads(line)
    return is_kv(event["f"], event.get("key"))


def measure(
    argv: list[str],
    env: dict[str, str] | None = None,
    memory_bytes: int | None = None,
    timeout_s: float = 300.0,
) -> tuple[int, str, float, float, float]:
    """Run a command; (exit code, stdout, wall seconds, CPU seconds, peak resident MB).

    GNU time does the measuring: its child is exec'd from a small process, so the peak
    is the command's own, not this script's (a fork keeps the parent's pages until exec).
    """

    def limit() -> None:
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        wrapped = [GNU_TIME, "-f", "%e %U %S %M", "-o", report.name, *argv]
        try:
            done = subprocess.run(
                wrapped,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                preexec_fn=limit,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return -1, "", timeout_s, timeout_s, 0.0
        fields = report.read().split()[-4:]
    wall, user, system, peak_kb = (float(f) for f in fields)
    return done.returncode, done.stdout.decode(), wall, user + system, peak_kb / 1024


def run_paxosd(
    case: Case, time_limit_s: float, python: str, pythonpath: Path, memory_bytes: int | None = None
) -> Measured:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    argv = [
        python,
        "-m",
        "paxosd",
        "check",
        str(case.path),
        "--json",
        "--time-limit",
        str(time_limit_s),
    ]
    code, out, wall, cpu, peak = measure(argv, env, memory_bytes, timeout_s=time_limit_s * 3 + 60)
    try:
        report = json.loads(out)
        verdict, check_s = report["verdict"], report.get("elapsed_s")
    except (ValueError, KeyError):
        verdict = "out of memory" if memory_bytes is not None and code != 0 else f"failed ({code})"
        check_s = None
    return Measured(verdict, wall, cpu, peak, check_s)


GO_DRIVER = r"""
// Reads Porcupine operation JSON (as paxosd's dump_porcupine writes it), checks it with
// porcupine.CheckOperationsTimeout, prints {"verdict": ..., "elapsed_s": ...}.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

type rawOp struct {
	ClientId int
	Input    struct {
		Op    string
		Key   json.RawMessage
		Value json.RawMessage
	}
	Call   int64
	Output *struct{ Value json.RawMessage }
	Return *int64
}

type input struct{ op, key, value, old, new string }
type output struct {
	value   string
	unknown bool
}

func canon(raw json.RawMessage) string {
	var v interface{}
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func text(raw json.RawMessage) string {
	var s string
	json.Unmarshal(raw, &s)
	return s
}

func partition(history []porcupine.Operation) [][]porcupine.Operation {
	m := map[string][]porcupine.Operation{}
	var order []string
	for _, op := range history {
		k := op.Input.(input).key
		if _, ok := m[k]; !ok {
			order = append(order, k)
		}
		m[k] = append(m[k], op)
	}
	var out [][]porcupine.Operation
	for _, k := range order {
		out = append(out, m[k])
	}
	return out
}

func hash(s interface{}) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s.(string)))
	return h.Sum64()
}

var models = map[string]porcupine.Model{
	"append": {Partition: partition, Init: func() interface{} { return "" }, Hash: hash,
		Step: func(state, in, out interface{}) (bool, interface{}) {
			i, o, s := in.(input), out.(output), state.(string)
			switch i.op {
			case "get":
				return o.unknown || o.value == s, s
			case "put":
				return true, i.value
			}
			return true, s + i.value
		}},
	"kv": {Partition: partition, Init: func() interface{} { return "null" }, Hash: hash,
		Step: func(state, in, out interface{}) (bool, interface{}) {
			i, o, s := in.(input), out.(output), state.(string)
			switch i.op {
			case "get", "read":
				return o.unknown || o.value == s, s
			case "put", "write":
				return true, i.value
			case "delete":
				return true, "null"
			case "cas":
				if s == i.old {
					return true, i.new
				}
				return o.unknown, s
			}
			return false, s
		}},
}

func main() {
	timeout := flag.Float64("timeout", 60, "seconds")
	model := flag.String("model", "append", "append or kv")
	flag.Parse()
	data, err := os.ReadFile(flag.Arg(0))
	var raw []rawOp
	if err == nil {
		err = json.Unmarshal(data, &raw)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ops := []porcupine.Operation{}
	for _, r := range raw {
		i := input{op: r.Input.Op, key: canon(r.Input.Key)}
		if *model == "append" {
			i.value = text(r.Input.Value)
		} else {
			i.value = canon(r.Input.Value)
			var pair []json.RawMessage
			if json.Unmarshal(r.Input.Value, &pair) == nil && len(pair) == 2 {
				i.old, i.new = canon(pair[0]), canon(pair[1])
			}
		}
		o, ret := output{unknown: true}, int64(math.MaxInt64)
		if r.Return != nil && r.Output != nil {
			ret, o.unknown = *r.Return, false
			if *model == "append" {
				o.value = text(r.Output.Value)
			} else {
				o.value = canon(r.Output.Value)
			}
		}
		ops = append(ops, porcupine.Operation{
			ClientId: r.ClientId, Input: i, Call: r.Call, Output: o, Return: ret})
	}
	start := time.Now()
	limit := time.Duration(*timeout * float64(time.Second))
	res := porcupine.CheckOperationsTimeout(models[*model], ops, limit)
	names := map[porcupine.CheckResult]string{porcupine.Ok: "linearizable",
		porcupine.Illegal: "not linearizable", porcupine.Unknown: "unknown"}
	out, _ := json.Marshal(map[string]interface{}{
		"verdict": names[res], "elapsed_s": time.Since(start).Seconds()})
	fmt.Println(string(out))
}
"""


def build_porcupine(source: Path, work: Path) -> Path | None:
    go = shutil.which("go")
    if go is None or not (source / "checker.go").is_file():
        print(f"porcupine: skipped (needs `go` and a checkout at {source})", file=sys.stderr)
        return None
    folder = work / "porcupine-driver"
    folder.mkdir()
    (folder / "main.go").write_text(GO_DRIVER)
    (folder / "go.mod").write_text(
        "module paxosd.local/porcupine-driver\n\ngo 1.16\n\n"
        "require github.com/anishathalye/porcupine v0.0.0\n\n"
        f"replace github.com/anishathalye/porcupine => {source.resolve()}\n"
    )
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOCACHE=str(work / "gocache"))
    built = subprocess.run(
        [go, "build", "-o", "driver", "."], cwd=folder, env=env, capture_output=True, text=True
    )
    if built.returncode != 0:
        print(f"porcupine: build failed:\n{built.stderr}", file=sys.stderr)
        return None
    return folder / "driver"


def run_porcupine(driver: Path, case: Case, time_limit_s: float, work: Path) -> Measured:
    path = work / (case.path.name + ".porcupine.json")
    path.write_text(dump_porcupine(load_history(case.path)))
    argv = [str(driver), "-timeout", str(time_limit_s), "-model", case.porcupine_model, str(path)]
    code, out, wall, cpu, peak = measure(argv, timeout_s=time_limit_s * 3 + 60)
    try:
        report = json.loads(out)
        verdict, check_s = report["verdict"], report.get("elapsed_s")
    except (ValueError, KeyError):
        verdict, check_s = f"failed ({code})", None
    return Measured(verdict, wall, cpu, peak, check_s)


def save_sim(folder: Path) -> None:
    """Regenerate the stored simulator histories (see tests/check/test_generated.py)."""
    from paxosd.sim.cluster import FAULTS, run
    from paxosd.sim.engine_swarm import spec_for

    folder.mkdir(parents=True, exist_ok=True)
    for clients, variant, seed in [
        (10, "correct", 1),
        (50, "correct", 1),
        (100, "correct", 1),
        (10, "unconfirmed-reads", 6),
        (50, "unconfirmed-reads", 1),
        (100, "unconfirmed-reads", 1),
        (10, "reply-before-fsync", 2),
        (50, "reply-before-fsync", 1),
        (100, "reply-before-fsync", 1),
    ]:
        result = run(spec_for(3, frozenset(FAULTS), variant, clients), seed)
        path = folder / f"sim-c{clients}-{variant}-s{seed}.jsonl.gz"
        path.write_bytes(gzip.compress(dump_jsonl(result.history).encode(), 9))
        print(f"{path}: {len(build_history(result.history).operations)} operations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="Only cases whose name contains this.")
    parser.add_argument("--time-limit", type=float, default=20.0, help="Seconds per check.")
    parser.add_argument("--baseline", default=BASELINE_REVISION, help="Git revision, or none.")
    parser.add_argument(
        "--baseline-memory", default="3G", help="Address space of the previous checker."
    )
    parser.add_argument("--porcupine", type=Path, help="A porcupine checkout to build and compare.")
    parser.add_argument("--save-sim", type=Path, help="Regenerate the stored sim histories here.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args()
    if not Path(GNU_TIME).exists():
        parser.error(f"needs GNU time at {GNU_TIME} (Debian: apt-get install time)")
    if args.save_sim:
        save_sim(args.save_sim)
        return
    from paxosd.check.budget import parse_size

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        baseline: Path | None = None
        if args.baseline != "none":
            baseline = work / "baseline"
            baseline.mkdir()
            archive = subprocess.run(
                ["git", "archive", args.baseline, "src"], cwd=REPO, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        driver = build_porcupine(args.porcupine, work) if args.porcupine else None
        rows = []
        for case in cases(work):
            if args.only not in case.name:
                continue
            row: dict[str, object] = {
                "history": case.name,
                "operations": len(load_history(case.path).operations),
            }
            row["paxosd"] = run_paxosd(case, args.time_limit, sys.executable, REPO / "src").__dict__
            if baseline is not None:
                row["previous"] = run_paxosd(
                    case,
                    args.time_limit,
                    sys.executable,
                    baseline / "src",
                    parse_size(args.baseline_memory),
                ).__dict__
            if driver is not None:
                row["porcupine"] = run_porcupine(driver, case, args.time_limit, work).__dict__
            rows.append(row)
            if not args.json:
                print(_line(row), flush=True)
        if args.json:
            print(json.dumps(rows, indent=2))


def _line(row: dict[str, object]) -> str:
    cells = [str(row["history"]), str(row["operations"])]
    for who in ("paxosd", "previous", "porcupine"):
        m = row.get(who)
        if isinstance(m, dict):
            search = "" if m.get("check_s") is None else f", search {m['check_s']:.2f} s"
            cells.append(
                f"{m['verdict']}, {m['wall_s']:.2f} s ({m['cpu_s']:.2f} s CPU{search}), "
                f"{m['peak_mb']:.0f} MB"
            )
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
