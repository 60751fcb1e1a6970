"""Alerts on the terminal: one coloured line per alert at or above a severity, capped.

Alerts below ``min_severity`` are only counted (they are in the JSONL log and the warehouse);
once ``max_lines`` lines are shown the rest are counted as suppressed. ``shown``,
``suppressed`` and ``below_threshold`` are totals over every worker of the process;
:meth:`ConsoleAlertSink.print_summary` prints them in one line.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from rich.console import Console as RichConsole
from rich.text import Text

from boucle.sinks.safe_text import terminal_text

if TYPE_CHECKING:
    from boucle.config.settings import Console

__all__ = ["SEVERITY_STYLES", "ConsoleAlertSink", "alert_line"]

_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
SEVERITY_STYLES = {
    "low": "dim",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


def _when(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    text = str(value or "")
    # ISO strings: keep date and time to the second.
    return text[:19].replace("T", " ") + ("Z" if len(text) > 19 else "") if "T" in text else text


def alert_line(alert: dict[str, Any]) -> Text:
    """The one-line rendering of an alert: no markup is interpreted in its fields, and control
    characters (escape sequences, bidi overrides, newlines) are shown as escapes
    (:func:`sinks.safe_text.terminal_text`): an alert's message quotes a customer, and alerts read
    from a topic may come from any producer.

    >>> alert_line({"alert_id": "3f2a9c10aa", "kind": "hot", "status": "open", "severity": "high",
    ...             "site_id": "store-0042", "region": "north", "attribute": "nps",
    ...             "message": "Detractor [NPS 3]", "event_time": "2026-11-22T10:31:05.120Z",
    ...             "owner": "alice"}).plain
    '2026-11-22 10:31:05Z HIGH     hot/open store-0042 (north) nps: Detractor [NPS 3] -> alice #3f2a9c10'
    >>> alert_line({"severity": "low", "message": "Verbatim: \x1b]0;pwned\x07\x1b[2J"}).plain
    '- LOW      ?/? -: Verbatim: \\\\x1b]0;pwned\\\\x07\\\\x1b[2J'
    """
    safe = terminal_text
    severity = safe(alert.get("severity", "")).lower()
    style = SEVERITY_STYLES.get(severity, "")
    line = Text(no_wrap=True)
    line.append(safe(_when(alert.get("event_time")) or "-"), style="cyan")
    line.append(" ")
    line.append(f"{severity.upper():<8}", style=style)
    line.append(f" {safe(alert.get('kind', '?'))}/{safe(alert.get('status', '?'))} ")
    line.append(safe(alert.get("site_id") or "-"), style="bold")
    if alert.get("region"):
        line.append(f" ({safe(alert['region'])})")
    if alert.get("attribute"):
        line.append(f" {safe(alert['attribute'])}", style="magenta")
    line.append(": ")
    line.append(safe(alert.get("message", "")), style=style if severity == "critical" else "")
    if alert.get("owner"):
        line.append(f" -> {safe(alert['owner'])}", style="green")
    if alert.get("alert_id"):
        line.append(f" #{safe(str(alert['alert_id'])[:8])}", style="dim")
    return line


class _Partition(StatelessSinkPartition[dict]):
    def __init__(self, sink: ConsoleAlertSink):
        self._sink = sink

    def write_batch(self, items: list[dict]) -> None:
        self._sink._write(items)


class ConsoleAlertSink(DynamicSink[dict]):
    """Prints alert dicts whose severity is at least ``console_settings.min_severity``."""

    def __init__(self, console_settings: Console, console: RichConsole | None = None):
        self.min_rank = _RANK[console_settings.min_severity]
        self.max_lines = console_settings.max_lines
        self.console = console if console is not None else RichConsole(highlight=False)
        self.shown = 0
        self.suppressed = 0  # at or above the threshold, beyond max_lines
        self.below_threshold = 0
        self._lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self)

    def _write(self, alerts: list[dict]) -> None:
        with self._lock:
            for alert in alerts:
                rank = _RANK.get(str(alert.get("severity", "")).lower(), -1)
                if rank < self.min_rank:
                    self.below_threshold += 1
                elif self.shown < self.max_lines:
                    self.console.print(alert_line(alert), soft_wrap=True)
                    self.shown += 1
                else:
                    self.suppressed += 1

    def summary(self) -> str:
        return (
            f"{self.shown} alerts shown, {self.suppressed} more not shown (max_lines), "
            f"{self.below_threshold} below {list(_RANK)[self.min_rank]}"
        )

    def print_summary(self) -> None:
        with self._lock:
            self.console.print(Text(self.summary(), style="dim"), soft_wrap=True)
