"""The notifier: alerts in (:meth:`Notifier.accept`), messages out when due (:meth:`Notifier.tick`).

``accept`` routes an alert record and writes its deliveries to the ledger, keyed by
``alert_id`` + status (+ the content of an ``updated``: each distinct update is news). Nothing is
sent yet: the caller may commit the record's offset once ``accept`` and the next ``tick`` returned.
``tick`` sends every delivery whose time has come, one message per digest group, through
:class:`Channels`. A failed attempt is tried again after an exponential backoff with jitter
(tenacity's ``wait_exponential_jitter``), kept in the ledger so that a restart keeps the
schedule; after ``notify.retry.attempts`` failures, or at once when the failure is permanent
(a 4xx answer, a refused address), the deliveries go to the dead-letter writer with their
reason. A record that is not an alert, and a route role naming nobody, are dead-lettered too.
The clock is injected: quiet hours, digests and retries are tested without sleeping.

Metrics per channel (:meth:`Notifier.metrics`): ``sent`` messages, ``alerts`` delivered in them,
``retried`` attempts that failed and will be tried again, ``failed`` deliveries dead-lettered,
``held`` deliveries planned for later (digest, quiet hours).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from tenacity import RetryCallState, wait_exponential_jitter

from boucle.config.notify import Notify, Retry
from boucle.config.settings import Settings
from boucle.flows.notify.clock import Clock, SystemClock
from boucle.flows.notify.ledger import Ledger
from boucle.flows.notify.render import Renderer
from boucle.flows.notify.routing import Router
from boucle.sinks.notify import DeliveryFailed
from boucle.sinks.notify.smtp import SmtpSender
from boucle.sinks.notify.webhook import WebhookPoster

__all__ = ["Channels", "DeadLetter", "Notifier", "backoff", "notifier_from_settings"]

logger = logging.getLogger("boucle.notify")

SMTP_USERNAME_ENV = "BOUCLE_SMTP_USERNAME"
SMTP_PASSWORD_ENV = "BOUCLE_SMTP_PASSWORD"


@dataclass(frozen=True)
class DeadLetter:
    """What the notifier gave up on: the record for the delivery dead-letter topic."""

    key: str
    reason: str
    channel: str
    target: str
    alert_id: str
    status: str
    attempts: int
    value: bytes  # the alert (or the unreadable record) as received

    def json(self) -> bytes:
        try:
            alert: Any = orjson.loads(self.value)
        except orjson.JSONDecodeError:
            alert = self.value.decode("utf-8", "replace")
        return orjson.dumps({"delivery": self.key, "reason": self.reason, "channel": self.channel,
                             "target": self.target, "alert_id": self.alert_id, "status": self.status,
                             "attempts": self.attempts, "alert": alert})


def backoff(retry: Retry) -> Callable[[int], float]:
    """Seconds to wait after the ``n``-th failed attempt: initial x 2^(n-1) + jitter, at most ``max``.

    >>> wait = backoff(Retry(initial="1s", max="30s", jitter="0s"))
    >>> [wait(n) for n in (1, 2, 3, 10)]
    [1.0, 2.0, 4.0, 30.0]
    """
    strategy = wait_exponential_jitter(multiplier=retry.initial.total_seconds(), max=retry.max.total_seconds(),
                                       jitter=retry.jitter.total_seconds())

    def wait(attempt: int) -> float:
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        return float(strategy(state))

    return wait


@dataclass
class Channels:
    """The senders: SMTP for e-mail, one HTTP poster for webhooks, the webhooks' URLs and secrets."""

    smtp: SmtpSender | None
    poster: WebhookPoster
    webhooks: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # name -> (format, url, secret)

    def close(self) -> None:
        self.poster.close()


class Notifier:
    """Routes, remembers and delivers alerts (one process, one ledger)."""

    def __init__(self, notify: Notify, router: Router, renderer: Renderer, channels: Channels, ledger: Ledger,
                 dead_letter: Callable[[DeadLetter], None], clock: Clock | None = None) -> None:
        self.notify, self.router, self.renderer = notify, router, renderer
        self.channels, self.ledger, self.dead_letter = channels, ledger, dead_letter
        self.clock = clock or SystemClock()
        self.wait = backoff(notify.retry)
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.accepted = Counter()  # records: alerts, duplicates, unrouted, unreadable
        self._pruned_at = 0.0

    # ---- in ----
    def accept(self, value: bytes, origin: str = "") -> int:
        """Plan and remember the deliveries of one alert record; returns how many are new."""
        now = self.clock.now()
        try:
            alert = orjson.loads(value)
        except orjson.JSONDecodeError:
            alert = None
        if not isinstance(alert, dict) or not all(_token(alert.get(k)) for k in ("alert_id", "status", "kind", "severity")):
            self.accepted["unreadable"] += 1
            self._problem(f"record|{origin}", "not_an_alert: not a JSON alert with alert_id, status, kind and severity"
                          " (short printable words)", {}, value, now)
            return 0
        plan = self.router.plan(alert, now)
        version = _version(alert)
        for i, problem in enumerate(plan.problems):
            self._problem(f"{alert['alert_id']}|{version}|route|{i}", f"no_recipient: {problem}", alert,
                          value, now)
        if not plan.deliveries:
            self.accepted["unrouted"] += 1
            return 0
        rows = [{
            "key": f"{alert['alert_id']}|{version}|{p.recipient.channel}|{p.recipient.target}",
            "alert_id": alert["alert_id"], "status": alert["status"], "channel": p.recipient.channel,
            "target": p.recipient.target, "route": p.route,
            "grp": p.group or f"{alert['alert_id']}|{version}|{p.recipient.channel}|{p.recipient.target}",
            "site_id": str(alert.get("site_id") or ""), "severity": alert["severity"],
            "language": p.recipient.language, "timezone": p.recipient.timezone,
            "due_at": p.due.timestamp(), "alert": value,
        } for p in plan.deliveries]
        new = self.ledger.add(rows)
        self.accepted["alerts" if new else "duplicates"] += 1
        for p in plan.deliveries:
            if new and p.due > now:
                self.counts[p.recipient.channel]["held"] += 1
        return new

    def _problem(self, key: str, reason: str, alert: dict, value: bytes, now: datetime) -> None:
        row = {"key": key, "alert_id": str(alert.get("alert_id", "")), "status": str(alert.get("status", "")),
               "channel": "none", "target": "", "route": "", "grp": key, "site_id": str(alert.get("site_id") or ""),
               "severity": str(alert.get("severity", "")), "language": "", "timezone": "",
               "due_at": now.timestamp(), "alert": value}
        self.ledger.add([row], state="dlq", reason=reason)

    # ---- out ----
    def tick(self) -> int:
        """Send every due message and write waiting dead letters; returns the messages sent."""
        now = self.clock.now().timestamp()
        groups: dict[str, list] = defaultdict(list)
        for row in self.ledger.due(now):
            groups[row["grp"]].append(row)
        sent = 0
        with self.channels.smtp.batch() if self.channels.smtp else nullcontext():  # one SMTP connection per tick
            for rows in groups.values():
                sent += self._send(rows, now)
        self._flush_dead_letters(now)
        if now - self._pruned_at >= 3600:  # hourly is plenty
            self._pruned_at = now
            self.ledger.prune(now - self.notify.ledger_retention.total_seconds())
        return sent

    def _send(self, rows: list, now: float) -> int:
        first = rows[0]
        channel, keys = first["channel"], [r["key"] for r in rows]
        alerts = [orjson.loads(r["alert"]) for r in rows]
        try:
            try:
                self._deliver(channel, first["target"], first["language"], alerts, first["grp"])
            except (ValueError, TypeError, KeyError, AttributeError, UnicodeError) as exc:  # an alert we cannot render
                raise DeliveryFailed(f"cannot render: {type(exc).__name__}: {exc}", permanent=True) from exc
        except DeliveryFailed as exc:
            attempts = first["attempts"] + 1
            if exc.permanent or attempts >= self.notify.retry.attempts:
                why = "permanent" if exc.permanent else f"{attempts} attempts"
                self.ledger.give_up(keys, f"{exc.reason} ({why})")
                logger.warning("giving up on %s %s after %s: %s", channel, first["target"], why, exc.reason)
            else:
                self.ledger.retry(keys, now + self.wait(attempts), exc.reason)
                self.counts[channel]["retried"] += 1
            return 0
        self.ledger.delivered(keys, now)
        self.counts[channel]["sent"] += 1
        self.counts[channel]["alerts"] += len(rows)
        return 1

    def _deliver(self, channel: str, target: str, language: str, alerts: list[dict], group: str) -> None:
        if channel == "email":
            if self.channels.smtp is None:
                raise DeliveryFailed("no SMTP relay configured", permanent=True)
            mail = self.renderer.email(alerts, language)
            smtp = self.channels.smtp
            smtp.send(smtp.message(target, mail.subject, mail.text, mail.html, {"X-Boucle-Delivery": group}))
            return
        fmt, url, secret = self.channels.webhooks[target]
        if fmt == "json":
            body = self.renderer.json_body(alerts, group, target)
        else:
            body = orjson.dumps(self.renderer.chat(alerts, language, fmt))
        self.channels.poster.post(url, body, secret=secret, headers={"X-Boucle-Delivery": group},
                                  timestamp=int(self.clock.now().timestamp()))

    def _flush_dead_letters(self, now: float) -> None:
        done = []
        for row in self.ledger.waiting_dead_letters():
            letter = DeadLetter(row["key"], row["reason"], row["channel"], row["target"], row["alert_id"],
                                row["status"], row["attempts"], bytes(row["alert"]))
            try:
                self.dead_letter(letter)
            except DeliveryFailed as exc:  # the DLQ itself is away: kept, written at the next tick
                logger.warning("delivery dead-letter topic unavailable (%s); %d kept in the ledger", exc.reason,
                               len(self.ledger.waiting_dead_letters()))
                break
            done.append(row["key"])
            self.counts[row["channel"]]["failed"] += 1
        if done:
            self.ledger.dead_lettered(done, now)

    # ---- state ----
    def next_due(self) -> datetime | None:
        at = self.ledger.next_due()
        return None if at is None else datetime.fromtimestamp(at, timezone.utc)

    def metrics(self) -> dict[str, dict[str, int]]:
        keys = ("sent", "alerts", "retried", "failed", "held")
        return {channel: {k: counts[k] for k in keys} for channel, counts in sorted(self.counts.items())}

    def close(self) -> None:
        self.channels.close()
        self.ledger.close()


def _version(alert: dict[str, Any]) -> str:
    """What makes a record news for an alert: its status; for ``updated``, also what changed.

    An alert is updated more than once (contacted, then escalated): each distinct update is delivered,
    the same update read twice is not. ``detected_at`` is left out: a replay detects again, later.

    >>> a = {"status": "updated", "severity": "high", "evidence": {"n": 1}, "message": "m"}
    >>> _version(a) == _version({**a, "detected_at": "later"}), _version(a) == _version({**a, "evidence": {"n": 2}})
    (True, False)
    >>> _version({"status": "resolved"})
    'resolved'
    """
    if alert["status"] != "updated":
        return alert["status"]
    content = orjson.dumps([alert.get("severity"), alert.get("evidence"), alert.get("message")],
                           option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return f"updated-{hashlib.sha256(content).hexdigest()[:12]}"


def _token(value: Any) -> bool:
    """A short printable word (ids, statuses, kinds): nothing that could break a header or a key.

    >>> _token("0b8f3bb6-2a0c-5d1e-9c4f-1e2d3c4b5a69"), _token("open\\r\\nBcc: x"), _token("")
    (True, False, False)
    """
    return isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable() and not any(c.isspace() for c in value)


def notifier_from_settings(settings: Settings, dead_letter: Callable[[DeadLetter], None], *,
                           ledger: Ledger | None = None, clock: Clock | None = None,
                           environ: dict[str, str] | None = None) -> Notifier:
    """A notifier for ``settings``: SMTP login and webhook URLs/secrets from the environment."""
    env = os.environ if environ is None else environ
    notify = settings.notify
    smtp = notify.smtp
    sender = SmtpSender(smtp.host, smtp.port, security=smtp.security, from_address=smtp.from_address,
                        username=env.get(SMTP_USERNAME_ENV, ""), password=env.get(SMTP_PASSWORD_ENV, ""),
                        timeout=smtp.timeout.total_seconds())
    webhooks = {}
    for name, hook in notify.webhooks.items():
        url = hook.url or env.get(hook.url_env, "")
        if not url:
            raise ValueError(f"notify.webhooks.{name}: the environment variable {hook.url_env} is not set")
        secret = env.get(hook.secret_env, "") if hook.secret_env else ""
        if hook.secret_env and not secret:
            raise ValueError(f"notify.webhooks.{name}: the environment variable {hook.secret_env} is not set")
        webhooks[name] = (hook.format, url, secret)
    questions = {name: m.labels_by_language(name) for name, m in settings.questions().items()}
    renderer = Renderer(questions, {s.id: s.name or s.id for s in settings.sites},
                        {r.id: r.name or r.id for r in settings.regions})
    channels = Channels(sender, WebhookPoster(timeout=notify.http_timeout.total_seconds()), webhooks)
    return Notifier(notify, Router(notify, settings.sites, settings.regions), renderer, channels,
                    ledger or Ledger(notify.ledger), dead_letter, clock)
