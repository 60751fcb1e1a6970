"""The delivery ledger: one SQLite file that remembers every delivery of the notifier.

A row is one alert (``alert_id`` + ``status``) for one recipient, keyed by both: an alert read
twice (a restart before its offset was committed, a republished alert) adds nothing, and a
delivered row is never sent again. States: ``pending`` (waiting for ``next_at``: its digest's
end, the end of quiet hours, or the next retry), ``delivered``, ``dlq`` (given up, waiting to
be written to the dead-letter topic) and ``dead`` (written there). Rows sharing a ``grp`` go out
as one message (a digest). Each change is one transaction, committed before anything else
happens, so a crash at any point loses nothing; at worst a message sent just before a crash is
sent again (at-least-once).

>>> ledger = Ledger(":memory:")
>>> row = dict(key="a1|open|email|x@y", alert_id="a1", status="open", channel="email", target="x@y",
...            route="r", grp="", site_id="s1", severity="high", language="en", timezone="UTC", due_at=10.0,
...            alert=b"{}")
>>> ledger.add([row]), ledger.add([row])
(1, 0)
>>> [r["key"] for r in ledger.due(10.0)]
['a1|open|email|x@y']
>>> ledger.delivered(["a1|open|email|x@y"], 11.0); ledger.due(99.0), ledger.counts()
([], {('email', 'delivered'): 1})
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterable

__all__ = ["Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,          -- alert_id|status|channel|target
    alert_id TEXT NOT NULL, status TEXT NOT NULL, channel TEXT NOT NULL, target TEXT NOT NULL,
    route TEXT NOT NULL, grp TEXT NOT NULL, site_id TEXT NOT NULL, severity TEXT NOT NULL,
    language TEXT NOT NULL, timezone TEXT NOT NULL,
    due_at REAL NOT NULL,          -- epoch seconds: digest end / end of quiet hours / now
    next_at REAL NOT NULL,         -- due_at, then the next retry
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT NOT NULL DEFAULT '',
    alert BLOB NOT NULL,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
"""
_COLUMNS = ("key", "alert_id", "status", "channel", "target", "route", "grp", "site_id", "severity", "language",
            "timezone", "due_at", "alert")


class Ledger:
    """The deliveries of one notifier (one process owns the file)."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None)  # autocommit; explicit transactions
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a delivered mark survives a power cut
        self.db.executescript(_SCHEMA)

    def add(self, rows: Iterable[dict[str, Any]], state: str = "pending", reason: str = "") -> int:
        """Insert the rows not already known (by key); returns how many were new."""
        sql = (f"INSERT OR IGNORE INTO deliveries ({', '.join(_COLUMNS)}, next_at, state, reason)"
               f" VALUES ({', '.join('?' * len(_COLUMNS))}, ?, ?, ?)")
        with self._tx():
            before = self.db.total_changes
            for row in rows:
                self.db.execute(sql, (*(row[c] for c in _COLUMNS), row["due_at"], state, reason))
            return self.db.total_changes - before

    def due(self, now: float, limit: int = 1000) -> list[sqlite3.Row]:
        """Pending rows whose time has come, oldest first."""
        return self.db.execute(
            "SELECT * FROM deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, rowid LIMIT ?",
            (now, limit)).fetchall()

    def waiting_dead_letters(self, limit: int = 1000) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM deliveries WHERE state = 'dlq' ORDER BY rowid LIMIT ?", (limit,)).fetchall()

    def delivered(self, keys: list[str], now: float) -> None:
        self._set(keys, "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, reason = '', done_at = ?"
                  " WHERE key = ?", now)

    def retry(self, keys: list[str], at: float, reason: str) -> None:
        with self._tx():
            for key in keys:
                self.db.execute("UPDATE deliveries SET attempts = attempts + 1, next_at = ?, reason = ? WHERE key = ?",
                                (at, reason, key))

    def give_up(self, keys: list[str], reason: str) -> None:
        with self._tx():
            for key in keys:
                self.db.execute("UPDATE deliveries SET attempts = attempts + 1, state = 'dlq', reason = ? WHERE key = ?",
                                (reason, key))

    def dead_lettered(self, keys: list[str], now: float) -> None:
        self._set(keys, "UPDATE deliveries SET state = 'dead', done_at = ? WHERE key = ?", now)

    def prune(self, before: float) -> int:
        """Forget delivered and dead-lettered rows done before ``before``; returns how many.

        A record older than that read again (a group reset to the beginning) would be delivered again:
        keep them longer than the alert topic's retention."""
        with self._tx():
            return self.db.execute("DELETE FROM deliveries WHERE state IN ('delivered', 'dead') AND done_at < ?",
                                   (before,)).rowcount

    def next_due(self) -> float | None:
        """When the next pending row is due (epoch seconds), or None."""
        row = self.db.execute("SELECT MIN(next_at) FROM deliveries WHERE state = 'pending'").fetchone()
        return row[0]

    def counts(self) -> dict[tuple[str, str], int]:
        """Rows per (channel, state)."""
        rows = self.db.execute("SELECT channel, state, COUNT(*) FROM deliveries GROUP BY channel, state ORDER BY 1, 2")
        return {(c, s): n for c, s, n in rows}

    def rows(self, where: str = "1", params: tuple = ()) -> list[sqlite3.Row]:
        return self.db.execute(f"SELECT * FROM deliveries WHERE {where} ORDER BY next_at, rowid", params).fetchall()

    def close(self) -> None:
        self.db.close()

    def _set(self, keys: list[str], sql: str, now: float) -> None:
        with self._tx():
            for key in keys:
                self.db.execute(sql, (now, key))

    def _tx(self):
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, *_) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
