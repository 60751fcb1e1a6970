"""Fatigue control: a per-site, per-day cap on hot alerts, with the overflow gathered in one digest.

A site's hot alerts of one local day of event time (the site's zone, ``calendar``; UTC without one) go out one by one up to
``hot_alerts.rate_cap.per_site_per_day``; the ones beyond it are *held*: not published, no case
opened (nobody was asked to call back), and gathered in one ``hot_digest`` alert for the site and
day (``alert_id = alert_id("hot_digest", site, day)``) that lists them (``digest_items`` at most;
all are counted) with their rules and severities. Severities in ``exempt`` (critical by default)
always go out and do not count. A day's digest goes out once the site's event time has passed
the day's end by ``lateness`` (late events of the day may still come), or when the input ends;
live (windows closed on the wall clock), also when the site's event time, run on by the wall clock
since its last response, passes it (a backlog of old days is not closed at once by today's date).

>>> from boucle.config.settings import RateCap
>>> cap = SiteRateCap(RateCap(per_site_per_day=2), lateness_ms=0)
>>> DAY = 86_400_000
>>> [cap.admit({"alert_id": f"a{i}", "severity": "medium", "evidence": {"rules": ["detractor"]},
...             "message": "m"}, 10 + i) for i in range(4)]
[True, True, False, False]
>>> site = ("s1", "north", "owner@x", "team-s1", "en", "Lille")
>>> cap.due(DAY - 1, site), [(d["kind"], d["evidence"]["held"], d["owner"]) for d in cap.due(DAY + 1, site)]
([], [('hot_digest', 2, 'owner@x')])
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from boucle.config.locales import texts
from boucle.config.settings import SEVERITY_RANK, RateCap
from boucle.config.times import DAY_MS, LocalDays, iso_ms, local_days
from boucle.operators.alerts import alert_id, new_alert

__all__ = ["SiteRateCap"]


class SiteRateCap:
    """The cap of one site: which hot alerts go out, and the digests of the days it held some.

    State per day of event time still open: ``[published, held, {rule: n}, {severity: n}, items, last_ms]``.
    """

    def __init__(self, cfg: RateCap, lateness_ms: int, state: tuple | None = None) -> None:
        self.cap, self.exempt, self.items = cfg.per_site_per_day, frozenset(cfg.exempt), cfg.digest_items
        self.lateness_ms = lateness_ms
        closed_before, days = state or (0, {})
        self.closed_before = closed_before  # days before this one are closed: their late alerts go out uncapped
        self.days: dict[int, list] = {int(d): list(v) for d, v in days.items()}
        self.calendar: LocalDays = local_days("")  # the site's local days, once the site is known

    def day_end_ms(self, day: int) -> int:
        """When ``day`` ends: the next local midnight."""
        return self.calendar.start_ms(day + 1)

    def state(self) -> tuple:
        """``(closed_before, {day: counts})`` as plain data."""
        return (self.closed_before, {day: list(v) for day, v in self.days.items()})

    def admit(self, alert: dict[str, Any], ts_ms: int) -> bool:
        """True: publish ``alert``; False: it is held for its day's digest."""
        if not self.cap or alert["severity"] in self.exempt:
            return True
        day = self.calendar.day_of(ts_ms)
        if day < self.closed_before:
            return True
        counts = self.days.get(day)
        if counts is None:
            counts = self.days[day] = [0, 0, {}, {}, [], 0]
        if counts[0] < self.cap:
            counts[0] += 1
            return True
        rules = alert.get("evidence", {}).get("rules") or ["?"]
        counts[1] += 1
        counts[2][rules[0]] = counts[2].get(rules[0], 0) + 1
        counts[3][alert["severity"]] = counts[3].get(alert["severity"], 0) + 1
        if len(counts[4]) < self.items:
            counts[4].append({"alert_id": alert["alert_id"], "severity": alert["severity"], "rules": list(rules),
                              "event_time": iso_ms(ts_ms), "message": alert.get("message", "")})
        counts[5] = max(counts[5], ts_ms)
        return False

    def due(self, clock_ms: int | None, site: tuple[str, str, str, str, str, str]) -> list[dict[str, Any]]:
        """The digests of the days closed at event time ``clock_ms`` (None: the input ended, all of them);
        ``site``: ``(site_id, region, owner, team, language, name)``."""
        out = []
        for day in sorted(self.days):
            if clock_ms is not None and self.day_end_ms(day) + self.lateness_ms >= clock_ms:
                break
            counts = self.days.pop(day)
            self.closed_before = max(self.closed_before, day + 1)
            if counts[1]:
                out.append(self._digest(day, counts, site))
        return out

    def _digest(self, day: int, counts: list, site: tuple) -> dict[str, Any]:
        site_id, region, owner, team, language, name = site
        held, by_rule, by_severity = counts[1], counts[2], counts[3]
        date = iso_ms(day * DAY_MS)[:10]
        rules = ", ".join(f"{rule} {n}" for rule, n in Counter(by_rule).most_common())
        return new_alert(
            id=alert_id("hot_digest", site_id, date),
            kind="hot_digest",
            severity=max(by_severity, key=SEVERITY_RANK.__getitem__),
            site_id=site_id,
            region=region,
            triggers=["rule", "rate_cap"],
            evidence={"day": date, "cap": self.cap, "held": held, "by_rule": dict(by_rule),
                      "by_severity": dict(by_severity), "alerts": list(counts[4])},
            message=texts("alerts", language)["rate_cap"]["text"].format(n=held, site=name or site_id, day=date, cap=self.cap,
                                                           rules=rules),
            event_ms=counts[5],
            owner=owner,
            team=team,
        )
