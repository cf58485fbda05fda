"""The lab's one trace file: a run, or a check's counterexamples, as one JSON document.

    {"format": "paxosd-lab-trace", "version": 1, "model": "explored" | "simulated",
     "config": {"algorithm": ..., "nodes": ..., ...}, "title": ..., "story": ...,
     "trace": [EVENT, ...]}

or, written by `paxosd lab check --trace-out`, the same with
`"counterexamples": {PROPERTY: {"steps": N, "trace": [EVENT, ...]}}` instead of `"trace"`.
Events are those of `paxosd.sim.trace`. An "explored" run comes from the explorer (one step
per `t`, and `paxosd lab play` can replay it action by action); a "simulated" run comes from
the seeded simulator (`paxosd lab scenario`) and can be stepped through as recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paxosd.check.consensus import PROPERTIES
from paxosd.sim.trace import Event

__all__ = ["FORMAT", "LabTrace", "document", "load"]

FORMAT = "paxosd-lab-trace"
VERSION = 1
MODELS = ("explored", "simulated")
trace_events_max = 100_000  # a bigger file is refused rather than read into memory


@dataclass(slots=True)
class LabTrace:
    """One run read from a trace file."""

    model: str
    config: dict[str, Any]
    trace: list[Event]
    title: str = ""
    story: str = ""
    property: str | None = None  # which counterexample, for a check's file


def document(
    model: str,
    config: dict[str, Any],
    trace: list[Event] | None = None,
    *,
    title: str = "",
    story: str = "",
    counterexamples: dict[str, list[Event]] | None = None,
) -> dict[str, Any]:
    """The JSON document for a run (`trace`) or for a check's `counterexamples`."""
    assert model in MODELS, model
    data: dict[str, Any] = {"format": FORMAT, "version": VERSION, "model": model}
    data["config"] = config
    if title:
        data["title"] = title
    if story:
        data["story"] = story
    if counterexamples is not None:
        data["counterexamples"] = {
            prop: {"steps": _steps(events, model), "trace": events}
            for prop, events in counterexamples.items()
        }
    else:
        data["trace"] = trace or []
    return data


def _steps(events: list[Event], model: str) -> int:
    if model == "explored":
        return len({event["t"] for event in events})
    return len(events)


def load(data: Any, property: str | None = None) -> LabTrace:
    """Read a trace document; ValueError saying what is wrong with it, never a KeyError."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(
            f'not a lab trace: expected a JSON object with "format": "{FORMAT}" '
            "(written by paxosd lab check --trace-out, lab scenario --trace-out or lab play)"
        )
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported lab trace version {data.get('version')!r}; want {VERSION}")
    model = data.get("model")
    if model not in MODELS:
        raise ValueError(f'"model" must be one of {", ".join(MODELS)}, not {model!r}')
    config = data.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("algorithm"), str):
        raise ValueError('"config" must be an object naming the "algorithm"')
    chosen = None
    if "counterexamples" in data:
        examples = data["counterexamples"]
        if not isinstance(examples, dict) or not examples:
            raise ValueError('"counterexamples" must be a non-empty object')
        if property is None:
            ordered = [p for p in PROPERTIES if p in examples] + sorted(examples)
            property = ordered[0]
        if property not in examples:
            raise ValueError(
                f"no counterexample for {property!r}; the file has: {', '.join(examples)}"
            )
        chosen = property
        entry = examples[property]
        trace = entry.get("trace") if isinstance(entry, dict) else None
    else:
        trace = data.get("trace")
    if not isinstance(trace, list) or not all(isinstance(e, dict) for e in trace):
        raise ValueError('"trace" must be a list of event objects')
    if len(trace) > trace_events_max:
        raise ValueError(f"the trace has {len(trace):,} events; the limit is {trace_events_max:,}")
    return LabTrace(
        model=str(model),
        config=dict(config),
        trace=[dict(e) for e in trace],
        title=str(data.get("title", "")),
        story=str(data.get("story", "")),
        property=chosen,
    )
