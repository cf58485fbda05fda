"""The space-time diagram: hand-built traces in, well-formed and faithful SVG/HTML out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from paxosd.lab.diagram import Highlight, render_html, render_svg, write

SVG = "{http://www.w3.org/2000/svg}"

# What the simulator records as each message's family (it takes it from the message object).
FAMILY_OF = {
    "Prepare": "phase1", "Promise": "phase1", "Accept": "phase2", "Accepted": "phase2",
    "Nack": "nack", "Decided": "learn", "Query": "learn", "Vote": "vote",
    "Heartbeat": "heartbeat",
}  # fmt: skip


class TraceBuilder:
    """Writes traces the way the simulator does: one event per call, seq counting up."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.t: float = 0.0
        self._ids = 0
        self._messages: dict[int, tuple[int, int, str]] = {}

    def at(self, t: float) -> TraceBuilder:
        self.t = t
        return self

    def log(self, ev: str, **fields: Any) -> dict[str, Any]:
        event = {"t": self.t, "seq": len(self.events), "ev": ev, **fields}
        self.events.append(event)
        return event

    def send(self, src: int, dst: int, msg: str) -> int:
        self._ids += 1
        self._messages[self._ids] = (src, dst, msg)
        self.log("send", **self._fields(self._ids))
        return self._ids

    def _fields(self, message_id: int) -> dict[str, Any]:
        src, dst, msg = self._messages[message_id]
        family = FAMILY_OF[msg.split("(")[0]]
        return {"src": src, "dst": dst, "msg": msg, "family": family, "id": message_id}

    def broadcast(self, src: int, dsts: list[int], msg: str) -> list[int]:
        return [self.send(src, dst, msg) for dst in dsts]

    def recv(self, message_id: int) -> dict[str, Any]:
        return self.log("recv", **self._fields(message_id))

    def drop(self, message_id: int, why: str) -> dict[str, Any]:
        return self.log("drop", why=why, **self._fields(message_id))

    def dup(self, message_id: int) -> dict[str, Any]:
        return self.log("dup", **self._fields(message_id))

    def note(self, node: int, text: str) -> None:
        self.log("note", node=node, text=text)


def paxos_round() -> list[dict[str, Any]]:
    """One clean round: 1 proposes red with ballot 1.1, everyone accepts, 1 decides."""
    b = TraceBuilder()
    b.log("propose", node=1, value="red")
    prepares = b.broadcast(1, [2, 3], "Prepare(1.1)")
    b.at(2)
    b.recv(prepares[0])
    promise2 = b.send(2, 1, "Promise(1.1, none)")
    b.at(3)
    b.recv(prepares[1])
    promise3 = b.send(3, 1, "Promise(1.1, none)")
    b.at(4)
    b.recv(promise2)
    b.recv(promise3)
    accepts = b.broadcast(1, [2, 3], "Accept(1.1, red)")
    b.at(6)
    b.recv(accepts[0])
    accepted2 = b.send(2, 1, "Accepted(1.1, red)")
    b.recv(accepts[1])
    accepted3 = b.send(3, 1, "Accepted(1.1, red)")
    b.at(8)
    b.recv(accepted2)
    b.log("decide", node=1, value="red")
    b.recv(accepted3)
    return b.events


def faulty_run() -> list[dict[str, Any]]:
    """A drop, a crash and restart, a partition and its heal, a duplicate, one in flight."""
    b = TraceBuilder()
    lost = b.send(1, 2, "Prepare(1.1)")
    b.drop(lost, "loss")
    b.at(1)
    b.log("crash", node=3)
    ok = b.send(1, 3, "Prepare(1.1)")
    b.at(3)
    b.drop(ok, "crashed")
    b.log("cut", links=[[1, 2], [2, 1]])
    blocked = b.send(2, 1, "Vote(blue)")
    b.drop(blocked, "partition")
    b.at(5)
    b.log("restart", node=3)
    b.log("heal", links=[[1, 2], [2, 1]])
    twice = b.send(2, 3, "Heartbeat(red)")
    b.dup(twice)
    b.at(6)
    b.recv(twice)
    b.at(7)
    b.recv(twice)
    b.send(3, 1, "Query")  # never delivered
    b.log("slow", node=2, factor=3.0)
    b.log("timeout", node=1)
    b.log("phase", name="liveness")
    b.note(2, "a rather long note that goes on and on and should be cut short in the picture")
    return b.events


def paxos_duel() -> tuple[list[dict[str, Any]], Highlight]:
    """Two proposers on 3 nodes: node 1 (ballot 1.1, red) is pre-empted by node 3 (ballot 1.3,
    blue). Red was already chosen by acceptors {1, 2}; node 2, promising 1.3, reports 1.1:red,
    so node 3 carries on red instead of blue. Node 2's Accepted to node 1 is lost, so node 1
    learns the outcome only from node 3's Decided."""
    b = TraceBuilder()
    b.log("propose", node=1, value="red")
    b.note(1, "starts ballot 1.1")
    p11 = b.broadcast(1, [1, 2, 3], "Prepare(1.1)")
    b.recv(p11[0])
    b.note(1, "promises 1.1")
    self_promise = b.send(1, 1, "Promise(1.1, none)")
    b.recv(self_promise)
    b.at(3)
    b.recv(p11[1])
    b.note(2, "promises 1.1")
    promise2 = b.send(2, 1, "Promise(1.1, none)")
    b.at(5)
    b.log("propose", node=3, value="blue")
    b.note(3, "starts ballot 1.3")
    p13 = b.broadcast(3, [3, 1, 2], "Prepare(1.3)")
    b.recv(p13[0])
    b.note(3, "promises 1.3")
    promise33 = b.send(3, 3, "Promise(1.3, none)")
    b.recv(promise33)
    b.at(6)
    b.recv(promise2)
    a11 = b.broadcast(1, [1, 2, 3], "Accept(1.1, red)")
    b.recv(a11[0])
    b.note(1, "accepts 1.1:red")
    accepted11 = b.send(1, 1, "Accepted(1.1, red)")
    b.recv(accepted11)
    b.at(8)
    b.recv(p11[2])
    nack1 = b.send(3, 1, "Nack(1.1, promised 1.3)")
    b.at(9)
    chosen = b.recv(a11[1])["seq"]
    b.note(2, "accepts 1.1:red")
    lost = b.send(2, 1, "Accepted(1.1, red)")
    b.drop(lost, "loss")
    b.at(11)
    b.recv(p13[2])
    b.note(2, "promises 1.3")
    promise23 = b.send(2, 3, "Promise(1.3, 1.1:red)")
    b.at(12)
    b.recv(a11[2])
    b.send(3, 1, "Nack(1.1, promised 1.3)")
    b.at(13)
    b.recv(p13[1])
    b.note(1, "promises 1.3")
    b.send(1, 3, "Promise(1.3, 1.1:red)")  # still in flight when the run ends
    b.at(14)
    b.recv(nack1)
    b.note(1, "pre-empted by 1.3, backs off 3 ticks")
    b.at(15)
    b.recv(promise23)
    b.note(3, "must carry on red, reported in promises")
    a13 = b.broadcast(3, [3, 1, 2], "Accept(1.3, red)")
    b.recv(a13[0])
    b.note(3, "accepts 1.3:red")
    accepted33 = b.send(3, 3, "Accepted(1.3, red)")
    b.recv(accepted33)
    b.at(18)
    b.recv(a13[2])
    b.note(2, "accepts 1.3:red")
    accepted23 = b.send(2, 3, "Accepted(1.3, red)")
    b.at(19)
    b.recv(a13[1])
    b.note(1, "accepts 1.3:red")
    b.send(1, 3, "Accepted(1.3, red)")
    b.at(21)
    b.recv(accepted23)
    b.log("decide", node=3, value="red")
    decided = b.broadcast(3, [1, 2], "Decided(red)")
    b.at(24)
    b.recv(decided[0])
    b.log("decide", node=1, value="red")
    b.recv(decided[1])
    b.log("decide", node=2, value="red")
    highlight = Highlight(
        chosen_at=chosen,
        witness=2,
        accepting_quorum=(1, 2),
        promising_quorum=(2, 3),
        caption=(
            "Red is chosen when node 2 accepts 1.1:red (accepting quorum {1, 2}). Node 3's "
            "ballot 1.3 is promised by {2, 3}; node 2 is in both quorums and reports 1.1:red, "
            "so node 3 proposes red, not its own blue."
        ),
    )
    return b.events, highlight


def synthetic(count: int, nodes: int = 5) -> list[dict[str, Any]]:
    """`count` events of busy broadcast traffic with the odd fault, for size and speed."""
    b = TraceBuilder()
    in_flight: list[int] = []
    step = 0
    while len(b.events) < count:
        step += 1
        b.at(step * 0.5)
        src = step % nodes + 1
        if step % 7 == 0 and in_flight:
            b.drop(in_flight.pop(0), "loss")
        elif step % 3 == 0 and in_flight:
            b.recv(in_flight.pop(0))
            b.recv(in_flight.pop(0)) if in_flight else None
        elif step % 97 == 0:
            b.log("crash", node=src)
            b.log("restart", node=src)
        else:
            ballot = f"{step}.{src}"
            in_flight.append(b.send(src, (src + step) % nodes + 1, f"Prepare({ballot})"))
            b.note(src, f"starts ballot {ballot}")
    return b.events[:count]


# -- helpers ---------------------------------------------------------------------------------


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def groups(root: ET.Element, layer: str) -> list[ET.Element]:
    container = root.find(f".//{SVG}g[@class='layer-{layer}']")
    assert container is not None, f"no {layer} layer"
    return container.findall(f"{SVG}g")


def title(element: ET.Element) -> str:
    node = element.find(f"{SVG}title")
    assert node is not None
    return node.text or ""


def texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


def delivered_arrows(root: ET.Element) -> list[ET.Element]:
    """Arrow groups that end in an arrowhead: one per delivered copy of a message."""
    return [
        g
        for g in groups(root, "arrows")
        if any("marker-end" in p.attrib for p in g.iter(f"{SVG}path"))
        and "in flight" not in title(g)
    ]


# -- tests -----------------------------------------------------------------------------------


def test_svg_is_xml_with_one_lifeline_and_header_per_node() -> None:
    root = parse(render_svg(paxos_round(), title="one round"))
    assert root.tag == f"{SVG}svg"
    lines = root.find(f".//{SVG}g[@class='layer-lifelines']")
    assert lines is not None
    xs = {line.attrib["x1"] for line in lines.iter(f"{SVG}line")}
    assert len(xs) == 3
    headers = [t for t in texts(root) if t.startswith("node ")]
    assert sorted(set(headers)) == ["node 1", "node 2", "node 3"]
    assert "one round" in texts(root)


def test_lifelines_follow_node_ids_left_to_right() -> None:
    trace = paxos_round()
    root = parse(render_svg(trace, nodes=[3, 1, 2, 4]))
    header_x = {}
    for text in root.iter(f"{SVG}text"):
        if (text.text or "").startswith("node "):
            header_x.setdefault(text.text, float(text.attrib["x"]))
    assert list(header_x) == ["node 1", "node 2", "node 3", "node 4"]
    assert sorted(header_x.values()) == list(header_x.values())


def test_one_arrow_per_delivered_message_with_its_label() -> None:
    trace = paxos_round()
    root = parse(render_svg(trace))
    receives = [e for e in trace if e["ev"] == "recv"]
    arrows = delivered_arrows(root)
    assert len(arrows) == len(receives)
    assert [int(g.attrib["data-seq"]) for g in arrows] == [e["seq"] for e in receives]
    labels = {int(g.attrib["data-seq"]): texts(g) for g in groups(root, "labels")}
    for event in receives:
        assert labels[event["seq"]] == [event["msg"]]
    sends = {e["id"]: e["seq"] for e in trace if e["ev"] == "send"}
    for arrow, event in zip(arrows, receives, strict=True):
        assert arrow.attrib["data-from"] == str(sends[event["id"]])
        assert event["msg"] in title(arrow)


def test_message_families_have_distinct_colours_and_a_legend() -> None:
    root = parse(render_svg(paxos_round()))
    colours = {}
    for g in delivered_arrows(root):
        stroke = next(p.attrib["stroke"] for p in g.iter(f"{SVG}path") if "stroke" in p.attrib)
        colours.setdefault(title(g).split("sends ")[1].split("(")[0], set()).add(stroke)
    assert colours["Prepare"] == colours["Promise"]
    assert colours["Accept"] == colours["Accepted"]
    assert colours["Prepare"] != colours["Accept"]
    legend = texts(root)
    assert "Prepare / Promise (phase 1)" in legend
    assert "Accept / Accepted (phase 2)" in legend
    assert "Nack" not in legend  # only what the run uses


def test_decide_and_propose_marks() -> None:
    all_text = texts(parse(render_svg(paxos_round())))
    assert "propose red" in all_text
    assert "decides red" in all_text


def test_drop_crash_partition_duplicate_and_in_flight() -> None:
    trace = faulty_run()
    root = parse(render_svg(trace))
    by_seq = {e["seq"]: e for e in trace}
    drops = [e["seq"] for e in trace if e["ev"] == "drop"]
    drop_groups = [g for g in groups(root, "arrows") if int(g.attrib["data-seq"]) in drops]
    assert len(drop_groups) == 3
    for g in drop_groups:
        paths = list(g.iter(f"{SVG}path"))
        assert not any("marker-end" in p.attrib for p in paths)  # ends in a cross instead
        assert any(p.attrib.get("stroke") == "#c92a2a" for p in paths)
    reasons = [t for g in groups(root, "labels") for t in texts(g)]
    assert {"lost", "crashed", "partition"} <= set(reasons)

    marks = {int(g.attrib["data-seq"]): g for g in groups(root, "marks")}
    crash = next(e["seq"] for e in trace if e["ev"] == "crash")
    assert title(marks[crash]).endswith("3 crashes")
    restart = next(e["seq"] for e in trace if e["ev"] == "restart")
    assert "restarts" in title(marks[restart])
    labels = [t for g in groups(root, "labels") for t in texts(g)]
    for expected in ("crash", "restart", "partition {1} | {2}", "partition heals", "slow ×3"):
        assert expected in labels
    assert "liveness phase" in labels
    assert "timeout" in labels
    note = next(
        g for g in groups(root, "labels") if by_seq[int(g.attrib["data-seq"])]["ev"] == "note"
    )
    assert texts(note)[0].endswith("…")
    assert "cut short in the picture" in title(note)

    # the crashed stretch of node 3's lifeline is dashed grey
    lifelines = root.find(f".//{SVG}g[@class='layer-lifelines']")
    assert lifelines is not None
    assert any("stroke-dasharray" in line.attrib for line in lifelines.iter(f"{SVG}line"))

    # the second copy of the duplicated heartbeat is dash-dotted, the Query is a dashed stub
    recvs = [e["seq"] for e in trace if e["ev"] == "recv"]
    arrows = {int(g.attrib["data-seq"]): g for g in groups(root, "arrows")}
    first, second = (
        next(p for p in arrows[s].iter(f"{SVG}path") if "stroke" in p.attrib) for s in recvs
    )
    assert "stroke-dasharray" not in first.attrib
    assert second.attrib["stroke-dasharray"] == "7 3 1.5 3"
    stubs = [g for g in groups(root, "arrows") if "in flight" in title(g)]
    assert len(stubs) == 1 and "Query" in title(stubs[0])


def test_every_event_is_drawn_with_a_title_and_seq() -> None:
    for trace in (paxos_round(), faulty_run(), paxos_duel()[0]):
        root = parse(render_svg(trace))
        drawn = {int(g.attrib["data-seq"]) for g in root.iter(f"{SVG}g") if "data-seq" in g.attrib}
        assert drawn == {e["seq"] for e in trace}
        for g in root.iter(f"{SVG}g"):
            if "data-seq" in g.attrib:
                assert title(g), g.attrib


def test_highlight_marks_chosen_witness_and_quorums() -> None:
    trace, highlight = paxos_duel()
    root = parse(render_svg(trace, highlight=highlight))
    all_text = texts(root)
    assert "value chosen: red" in all_text
    assert "witness" in all_text
    assert all_text.count("A") == 2 + 1  # two members, one legend badge
    assert all_text.count("P") == 2 + 1
    caption = " ".join(t for t in all_text if t)
    assert "node 2 is in both" in caption
    back = {int(g.attrib["data-seq"]) for g in groups(root, "back")}
    assert highlight.chosen_at in back


def test_html_embeds_svg_event_list_and_controls() -> None:
    trace, highlight = paxos_duel()
    page = render_html(trace, title="duel", highlight=highlight, description="Two <proposers>.")
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "</svg>" in page
    assert render_svg(trace, title="duel", highlight=highlight).split("<defs>")[1][:200] in page
    assert "Two &lt;proposers&gt;." in page
    for event in trace:
        assert f'<li value="{event["seq"]}" data-seq="{event["seq"]}"' in page
    assert 'id="pxd-back"' in page and 'id="pxd-slider"' in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    assert "<script src" not in page and "<link" not in page


def test_rendering_is_deterministic() -> None:
    trace, highlight = paxos_duel()
    assert render_svg(trace, highlight=highlight) == render_svg(trace, highlight=highlight)
    assert render_html(trace, highlight=highlight) == render_html(trace, highlight=highlight)
    assert render_svg(faulty_run(), time_axis="t") == render_svg(faulty_run(), time_axis="t")


def test_time_axis_t_is_proportional_with_a_minimum_gap() -> None:
    trace = paxos_round()
    root = parse(render_svg(trace, time_axis="t"))
    marks = {int(g.attrib["data-seq"]): g for g in groups(root, "marks")}
    sends = [e for e in trace if e["ev"] == "send"]
    ys = {e["seq"]: float(marks[e["seq"]].find(f"{SVG}circle").attrib["cy"]) for e in sends}
    # sends at the same t are stacked by at least the minimum gap, in seq order
    assert ys[sends[1]["seq"]] - ys[sends[0]["seq"]] >= 18
    with pytest.raises(ValueError, match="time_axis"):
        render_svg(trace, time_axis="wall")


def test_write_picks_format_by_suffix(tmp_path: Path) -> None:
    trace = paxos_round()
    write(tmp_path / "run.svg", trace, title="x")
    write(tmp_path / "run.html", trace, description="d")
    assert (tmp_path / "run.svg").read_text(encoding="utf-8").startswith("<svg")
    assert (tmp_path / "run.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match=r"\.svg.*\.html"):
        write(tmp_path / "run.png", trace)


def test_missing_fields_name_the_seq_and_unknown_kinds_become_notes() -> None:
    trace = paxos_round()
    broken = [dict(e) for e in trace]
    del broken[4]["dst"]
    with pytest.raises(ValueError, match=r"seq 4 .*dst"):
        render_svg(broken)
    with pytest.raises(ValueError, match="seq"):
        render_svg([{"t": 0, "ev": "note", "node": 1, "text": "x"}])
    odd = [*trace, {"t": 9, "seq": 99, "ev": "mystery", "node": 2, "detail": "?"}]
    root = parse(render_svg(odd))
    mystery = [g for g in groups(root, "labels") if g.attrib["data-seq"] == "99"]
    assert len(mystery) == 1 and "mystery" in title(mystery[0])


def test_odd_but_valid_input_does_not_crash() -> None:
    assert parse(render_svg([]))  # nothing at all
    assert parse(render_svg([], nodes=[1, 2]))
    orphan = [{"t": 1, "seq": 0, "ev": "recv", "src": 1, "dst": 2, "msg": "Vote(red)", "id": 7}]
    assert len(delivered_arrows(parse(render_svg(orphan)))) == 1
    escaped = [{"t": 0, "seq": 0, "ev": "note", "node": 1, "text": "<b>&\"'</b>"}]
    assert "<b>" not in render_svg(escaped)
    assert parse(render_svg(escaped))


ODD_TRACES: dict[str, list[dict[str, Any]]] = {
    "heal only": [{"t": 0, "seq": 0, "ev": "heal", "links": []}],
    "heal without links": [
        {"t": 0, "seq": 0, "ev": "cut", "links": [[1, 2], [2, 1]]},
        {"t": 1, "seq": 1, "ev": "heal"},
    ],
    "phase only": [{"t": 0, "seq": 0, "ev": "phase", "name": "safety"}],
    "one-way cut": [{"t": 0, "seq": 0, "ev": "cut", "links": [[1, 3]]}],
    "unknown kind, no node": [{"t": 0, "seq": 0, "ev": "weird"}],
    "odd field types": [
        {"t": 0, "seq": 0, "ev": "send", "src": 1, "dst": 2, "msg": {"a": 1}, "id": 1},
        {"t": 0, "seq": 1, "ev": "slow", "node": 1, "factor": "fast"},
        {"t": 0, "seq": 2, "ev": "propose", "node": "a", "value": None},
    ],
    "self drop": [
        {"t": 0, "seq": 0, "ev": "send", "src": 1, "dst": 1, "msg": "Vote(red)", "id": 1},
        {
            "t": 0,
            "seq": 1,
            "ev": "drop",
            "src": 1,
            "dst": 1,
            "msg": "Vote(red)",
            "id": 1,
            "why": "partition",
        },
    ],
    "repeated seq": [
        {"t": 0, "seq": 0, "ev": "crash", "node": 1},
        {"t": 0, "seq": 0, "ev": "restart", "node": 1},
    ],
    "restart without crash": [{"t": 0, "seq": 0, "ev": "restart", "node": 1}],
}


@pytest.mark.parametrize("name", sorted(ODD_TRACES))
@pytest.mark.parametrize("time_axis", ["seq", "t"])
def test_odd_traces_render(name: str, time_axis: str) -> None:
    trace = ODD_TRACES[name]
    assert parse(render_svg(trace, time_axis=time_axis))
    assert "</html>" in render_html(trace, time_axis=time_axis)


def test_bad_field_types_are_value_errors() -> None:
    bad_id = [{"t": 0, "seq": 3, "ev": "send", "src": 1, "dst": 2, "msg": "Query", "id": [1]}]
    with pytest.raises(ValueError, match="seq 3"):
        render_svg(bad_id)
    bad_links = [{"t": 0, "seq": 5, "ev": "cut", "links": [[1, 2, 3]]}]
    with pytest.raises(ValueError, match="seq 5"):
        render_svg(bad_links)
    with pytest.raises(ValueError, match="seq 0"):
        render_svg([{"t": "soon", "seq": 0, "ev": "crash", "node": 1}], time_axis="t")


def test_two_thousand_events_render_every_event_in_a_bounded_page() -> None:
    """Every event gets its mark, and the page stays small (its speed: bench/diagram_render.py)."""
    trace = synthetic(2000)
    svg = render_svg(trace, time_axis="seq")
    html = render_html(trace)
    root = parse(svg)
    assert len([g for g in root.iter(f"{SVG}g") if "data-seq" in g.attrib]) >= 2000
    assert len(html) < 5_000_000


def test_every_message_of_every_core_has_its_own_family() -> None:
    """The engine's messages (CatchUp, Entries, ReadIndex, PreVote, Commit, Forward, ...) and
    the teaching cores' each get a family from their class, never "other"."""
    import typing

    from paxosd.core.lessons import failover, leader, majority
    from paxosd.core.multi import messages as multi
    from paxosd.core.synod import messages as synod
    from paxosd.sim.trace import FAMILIES, family_of

    classes = [*typing.get_args(multi.Message), *typing.get_args(synod.Message)]
    classes += [leader.SetRequest, leader.GetRequest, leader.Value, failover.Heartbeat]
    classes += [majority.Propose, majority.Vote]
    assert len(classes) >= 16 + 7 + 6
    for klass in classes:
        family = family_of(klass.__new__(klass))
        assert family in FAMILIES and family != "other", klass.__name__
    assert family_of(object()) == "other"
    assert {family_of(c.__new__(c)) for c in (multi.CatchUp, multi.Entries)} == {"catchup"}


def test_colour_comes_from_the_recorded_family_not_from_the_text() -> None:
    b = TraceBuilder()
    sent = b.send(1, 2, "Prepare(1.1)")
    b.recv(sent)
    b.events[0]["family"] = b.events[1]["family"] = "catchup"  # say it is a CatchUp
    root = parse(render_svg(b.events))
    stroke = next(
        p.attrib["stroke"]
        for g in delivered_arrows(root)
        for p in g.iter(f"{SVG}path")
        if "stroke" in p.attrib
    )
    from paxosd.lab.diagram.svg import FAMILY_BY_KEY

    assert stroke == FAMILY_BY_KEY["catchup"].colour
    assert "CatchUp / Entries / SnapshotInstall" in texts(root)


def test_the_page_opens_at_step_0_with_controls_every_default_font_has() -> None:
    import re

    trace, highlight = paxos_duel()
    page = render_html(trace, highlight=highlight)
    assert f'id="pxd-slider" min="0" max="{len(trace)}" value="0"' in page
    assert f"step 0 / {len(trace)}: nothing has happened yet" in page
    controls = page.split('<nav class="pxd-controls"')[1].split("</nav>")[0]
    shown = re.sub(r"<[^>]+>", "", controls)
    # DejaVu Sans and Liberation have ASCII and the two triangles; media symbols are boxes.
    assert set(shown) <= set(map(chr, range(32, 127))) | {"\n"}, shown
    assert "&#9664;" in controls and "&#9654;" in controls
    assert "⏮" not in page and "⏭" not in page


LABEL = re.compile(
    r'<rect x="([-\d.]+)" y="([-\d.]+)" width="([\d.]+)" height="([\d.]+)" rx="3" '
    r'fill="#fff" fill-opacity="0.92"/>(?:<circle[^>]*/>)?<text[^>]*>([^<]*)</text>'
)


def test_the_labels_of_paired_arrows_keep_apart() -> None:
    """A broadcast draws two arrows from one point with the same text (Prepare(1.1) to nodes
    2 and 3): at every step of the paxos-holds tour, no two message labels touch."""
    from paxosd.lab.play import tours
    from paxosd.lab.play.session import Session

    tour = tours.TOURS["paxos-holds"]
    session = Session(tour.config)
    progress = tours.start(session, tour)
    for stage in tour.stages:
        if stage.show:
            session.apply_all(list(stage.show))
            tours.advance(session, progress)
    for step in range(session.cursor + 1):
        session.goto(step)
        svg = render_svg(session.trace(), nodes=[1, 2, 3])
        boxes = [
            (float(x), float(y), float(w), float(h), t) for x, y, w, h, t in LABEL.findall(svg)
        ]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                apart = (
                    a[0] + a[2] + 1 <= b[0] or b[0] + b[2] + 1 <= a[0]
                    or a[1] + a[3] + 1 <= b[1] or b[1] + b[3] + 1 <= a[1]
                )  # fmt: skip
                assert apart, (step, a, b)
