"""JSONL append log and console alert sink, driven through bytewax's run_main."""

from __future__ import annotations

import io
import threading

import orjson
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from rich.console import Console as RichConsole

from boucle.config.settings import Console
from boucle.sinks.console import ConsoleAlertSink
from boucle.sinks.jsonl import JsonlSink


def run(items, sink, batch_size: int = 3) -> None:
    flow = Dataflow("files_test")
    op.output("out", op.input("in", flow, TestingSource(items, batch_size=batch_size)), sink)
    run_main(flow)


def alert(i: int, severity: str) -> dict:
    return {
        "alert_id": f"id{i:04d}", "kind": "hot", "status": "open", "severity": severity,
        "site_id": f"store-{i:04d}", "region": "north", "attribute": "nps",
        "message": f"Detractor [bold]{i}[/bold]", "event_time": "2026-11-22T10:31:05.120Z",
        "owner": "alice",
    }


# ---- JSONL ------------------------------------------------------------------------------------

def test_jsonl_one_line_per_item_and_appends(tmp_path):
    path = tmp_path / "out" / "alerts.jsonl"  # parent created by the sink
    items = [alert(i, "high") for i in range(7)] + [b'{"already":"json"}', {"k": {"nested": [1, 2]}}]
    run(items, JsonlSink(path))
    lines = path.read_bytes().splitlines()
    assert len(lines) == 9
    assert [orjson.loads(line) for line in lines] == items[:7] + [{"already": "json"}, items[8]]
    run([{"second": "run"}], JsonlSink(path))  # an append log: earlier lines stay
    assert path.read_bytes().splitlines()[-1] == b'{"second":"run"}'
    assert len(path.read_bytes().splitlines()) == 10


def test_jsonl_threads_never_interleave_lines(tmp_path):
    path = tmp_path / "dl.jsonl"
    sink = JsonlSink(path)
    parts = [sink.build("out", i, 2) for i in range(2)]
    payload = "x" * 5000

    def work(part, w):
        for k in range(50):
            part.write_batch([{"w": w, "k": k, "j": j, "p": payload} for j in range(20)])

    threads = [threading.Thread(target=work, args=(p, w)) for w, p in enumerate(parts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for part in parts:
        part.close()
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(records) == 2 * 50 * 20
    assert {(r["w"], r["k"], r["j"]) for r in records} == {
        (w, k, j) for w in range(2) for k in range(50) for j in range(20)
    }


# ---- console ----------------------------------------------------------------------------------

def test_console_filters_by_severity_and_caps_lines():
    out = io.StringIO()
    console = RichConsole(file=out, width=200, color_system=None)
    sink = ConsoleAlertSink(Console(min_severity="high", max_lines=3), console=console)
    severities = ["low", "medium", "high", "critical", "low", "high", "critical", "high", "medium"]
    run([alert(i, s) for i, s in enumerate(severities)], sink)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and sink.shown == 3
    assert sink.suppressed == 2  # high/critical beyond max_lines
    assert sink.below_threshold == 4
    assert "HIGH" in lines[0] and "store-0002" in lines[0] and "CRITICAL" in lines[1]
    assert "Detractor [bold]2[/bold]" in lines[0]  # no markup interpreted from alert text
    assert "-> alice" in lines[0] and "#id0002" in lines[0]
    sink.print_summary()
    assert "3 alerts shown, 2 more not shown" in out.getvalue().splitlines()[-1]


def test_console_colours_by_severity_and_zero_lines():
    out = io.StringIO()
    console = RichConsole(file=out, width=300, force_terminal=True, color_system="truecolor")
    sink = ConsoleAlertSink(Console(min_severity="low", max_lines=10), console=console)
    run([alert(1, "critical"), alert(2, "low")], sink)
    critical, low = out.getvalue().splitlines()
    assert "\x1b[" in critical and critical != low
    quiet = ConsoleAlertSink(Console(min_severity="low", max_lines=0), console=RichConsole(file=io.StringIO()))
    run([alert(1, "critical")], quiet)
    assert (quiet.shown, quiet.suppressed) == (0, 1)
    assert quiet.console.file.getvalue() == ""
