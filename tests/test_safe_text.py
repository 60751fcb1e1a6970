"""Customer-written text never drives the terminal nor becomes markup: nasty comments printed
through every output (run console, ``alerts tail``, ``query``, ``cases``, the HTML report)."""

from __future__ import annotations

import re
from io import StringIO

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from boucle.flows.cli import app as app_module
from boucle.flows.cli import cases as cases_module
from boucle.flows.cli.app import app
from boucle.sinks.clickhouse.client import close_all
from boucle.sinks.safe_text import UNSAFE_CODEPOINTS, html_text, json_line, rich_text, terminal_text

runner = CliRunner()

# Window title, clear screen, an OSC 8 hyperlink, a CSI colour, C1 CSI/OSC, a BEL, a backspace, a
# carriage return, bidi overrides and isolates, rich markup (a link, styles, an unmatched closing
# tag) and HTML.
NASTY = (
    "J'ai acheté \x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil.example\x1b\\click here\x1b]8;;\x1b\\"
    " \x1b[31mred\x1b[0m \x9b31m \x9d0;t\x9c \x08\x7f\rFAKE LINE \u202eevil\u202c \u2066x\u2069"
    " [link=http://evil.example]fake[/link] [bold red]loud [/x] <a href=\"javascript:alert(1)\">y</a>"
    " <script>alert(1)</script> evil"
)
# Short enough to be quoted whole in an alert's message (the report's timeline shows messages).
NASTY_SHORT = ("J'ai acheté <a href=\"javascript:alert(1)\">y</a> <b>x</b> \x1b]0;pwned\x07 \u202eevil"
               " [link=http://evil.example]fake[/link] [/x]")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colours rich itself writes on a terminal


def assert_inert(output: str) -> None:
    """No control sequence but rich's own colours, no hyperlink, no bidi control, no raw C0/C1."""
    bare = SGR.sub("", output)
    assert "\x1b" not in bare  # so no OSC 8 hyperlink either (C1 OSC, \x9d, is checked below)
    assert not any(ord(c) in UNSAFE_CODEPOINTS for c in bare if c != "\n"), [c for c in bare if ord(c) in UNSAFE_CODEPOINTS]
    assert "evil.example\x1b" not in output and "\x1b]8;id=" not in output  # rich makes OSC 8 links from [link]


def terminal() -> Console:
    return Console(file=StringIO(), force_terminal=True, width=400, color_system="truecolor")


# ---- the helpers -------------------------------------------------------------------------------

def test_every_unsafe_character_is_made_visible():
    for codepoint in UNSAFE_CODEPOINTS:
        shown = terminal_text(f"a{chr(codepoint)}b")
        assert shown.startswith("a\\") and shown.endswith("b") and not any(ord(c) in UNSAFE_CODEPOINTS for c in shown)
    assert terminal_text("a\nb", newlines=True) == "a\nb" and terminal_text("a\nb") == "a\\x0ab"
    assert terminal_text("Très bien, merci “à bientôt” 👍") == "Très bien, merci “à bientôt” 👍"
    assert terminal_text(None) == "" and terminal_text(42) == "42"


def test_json_lines_keep_their_value():
    document = orjson.dumps({"comment": NASTY})
    line = json_line(document.decode())
    assert orjson.loads(line) == {"comment": NASTY}
    assert not any(ord(c) in UNSAFE_CODEPOINTS for c in line)


def test_markup_is_never_parsed():
    console = terminal()
    console.print(rich_text(NASTY))
    assert_inert(console.file.getvalue())
    assert "[link=http://evil.example]fake[/link]" in console.file.getvalue()
    assert "&lt;script&gt;" in html_text(NASTY) and "<a href" not in html_text(NASTY)


def test_the_bug_these_guard_against_is_real():
    """Without them, rich writes the escape sequences through and turns [link] into a hyperlink."""
    console = terminal()
    console.print(NASTY.replace("[/x]", ""), highlight=False)
    assert "\x1b]0;pwned" in console.file.getvalue() and "\x1b]8;id=" in console.file.getvalue()
    with pytest.raises(Exception, match="closing tag"):
        terminal().print("oops [/x]")


# ---- the run console ---------------------------------------------------------------------------

def test_console_sink_prints_nasty_alerts_inert(settings):
    from boucle.sinks.console import ConsoleAlertSink

    console = terminal()
    sink = ConsoleAlertSink(settings.outputs.console, console)
    alert = {"alert_id": "a1\x1b[2J", "kind": "hot", "status": "open", "severity": "critical",
             "site_id": "store-0001\x1b]0;x\x07", "region": "r\u202e", "attribute": None,
             "message": f"Alerte client: {NASTY}", "owner": "o[link=http://evil.example]x[/link]",
             "event_time": "2026-10-01T10:00:00.000Z"}
    sink._write([alert, {**alert, "message": "[/x]"}])
    output = console.file.getvalue()
    assert_inert(output)
    assert sink.shown == 2 and "FAKE LINE" in output and "\\x1b]0;pwned" in output


# ---- alerts tail, on a real broker -------------------------------------------------------------

def test_alerts_tail_prints_nasty_records_inert(kafka_broker):
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    from kafka_broker import unique_topic

    from boucle.config.settings import Kafka
    from boucle.flows.cli.alerts_tail import tail_alerts

    topic = unique_topic("test.nasty-alerts")
    kafka_broker.admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    alert = {"alert_id": "a1", "kind": "hot", "status": "open", "severity": "critical", "site_id": "store-0001",
             "region": "r", "message": NASTY, "event_time": "2026-10-01T10:00:00.000Z"}
    values = [
        orjson.dumps(alert),                         # escapes C0 but writes C1 and bidi raw
        orjson.dumps(alert).replace(b"\\u001b", b"\x1b"),  # raw ESC bytes: not JSON, any producer can
        b"\x1b]0;not json at all\x07\x1b[2J",
        b"[1, 2]",
    ]
    for value in values:
        producer.produce(topic, value, b"store-0001", headers=[("severity", b"critical")])
    assert producer.flush(10) == 0
    kafka = Kafka(brokers=kafka_broker.bootstrap)

    console = terminal()
    shown = tail_alerts(kafka, topic=topic, from_beginning=True, to_end=True, console=console)
    assert shown == len(values)
    output = console.file.getvalue()
    assert_inert(output)
    assert "not an alert (partition 0, offset 2)" in output and "FAKE LINE" in output

    out = StringIO()
    assert tail_alerts(kafka, topic=topic, from_beginning=True, to_end=True, as_json=True, out=out) == len(values)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(values)
    assert_inert(out.getvalue())
    assert orjson.loads(lines[0]) == alert  # the same JSON value, escaped


# ---- query, cases, report on a real chDB warehouse ---------------------------------------------

EVENTS = [
    # A promoter who consented (cases promoters) and a detractor whose purchase complaint is a
    # critical hot alert (quoted in the report's timeline); both comments are nasty.
    {"event_id": "e-promoter", "occurred_at": "2026-10-01T09:00:00Z", "site_id": "store-0001", "channel": "store",
     "scores": {"nps": 10, "csat": 5}, "attributes": {"waiting_time": 5}, "language": "fr", "comment": NASTY,
     "customer": {"id": "cust-1\x1b[2J", "consent_contact": True}},
    {"event_id": "e-detractor", "occurred_at": "2026-10-01T10:00:00Z", "site_id": "store-0001", "channel": "store",
     "scores": {"nps": 0, "csat": 1}, "attributes": {"waiting_time": 1}, "language": "fr", "comment": NASTY_SHORT,
     "customer": {"id": "cust-2", "consent_contact": False}},
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nasty")
    patch = pytest.MonkeyPatch()
    patch.setenv("BOUCLE_WAREHOUSE__PATH", str(tmp / "chdb"))
    patch.setenv("BOUCLE_OUTPUTS__ALERTS_JSONL", str(tmp / "alerts.jsonl"))
    patch.setenv("BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL", str(tmp / "dead.jsonl"))
    events = tmp / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in EVENTS))
    result = runner.invoke(app, ["replay", str(events), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    yield tmp
    close_all()
    patch.undo()


@pytest.fixture
def cli_terminal(monkeypatch):
    """The CLI's console as a terminal (rich writes links and escapes only to terminals)."""
    console = terminal()
    monkeypatch.setattr(app_module, "console", console)
    monkeypatch.setattr(cases_module, "console", console)
    return console


def test_query_table_prints_stored_comments_inert(warehouse, cli_terminal):
    result = runner.invoke(app, ["query", "SELECT event_id, comment, customer_id FROM feedback ORDER BY event_id"],
                           catch_exceptions=False)
    assert result.exit_code == 0
    output = cli_terminal.file.getvalue()
    assert_inert(output)
    assert output.count("[link=http://evil.example]fake[/link]") == 2 and "[/x]" in output


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_query_json_and_csv_print_stored_comments_inert(warehouse, fmt):
    result = runner.invoke(app, ["query", "SELECT comment, message FROM feedback, alerts LIMIT 1", "--format", fmt],
                           catch_exceptions=False)
    assert result.exit_code == 0 and "fake[/link]" in result.output
    assert_inert(result.output)
    if fmt == "json":
        assert orjson.loads(result.output)["comment"] in (NASTY, NASTY_SHORT)  # escaped, not altered


@pytest.mark.parametrize("command", [["cases", "search", "evil"], ["cases", "promoters"], ["cases", "summary"],
                                     ["cases", "non-respondents", "--all"]])
def test_cases_print_stored_comments_inert(warehouse, cli_terminal, command):
    result = runner.invoke(app, command, catch_exceptions=False)
    assert result.exit_code == 0
    output = cli_terminal.file.getvalue()
    assert_inert(output)
    if command[1] in ("search", "promoters"):
        assert "fake[/link]" in output and "[/x]" in output


def test_report_escapes_customer_text(warehouse, tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--out", str(out), "--period", "7d"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    figures = page[page.index("<main>"):]
    assert "\x1b" not in figures and not any(ord(c) in UNSAFE_CODEPOINTS for c in figures if c != "\n")
    # Hot alerts, which quote the verbatim, stay off the outer-loop timeline (attribute alerts and
    # regional incidents only); any text that reaches the page is HTML-escaped (plotly shows tags as text).
    assert "\\u003ca href" not in figures and "\\u003cb\\u003e" not in figures and "<a href" not in figures
