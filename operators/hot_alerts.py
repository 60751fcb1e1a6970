"""Hot alerts: one bad experience, routed to the site's frontline team within the same batch.

Per site, a customer gets at most one hot alert within ``hot_alerts.cooldown`` (on event time):
a customer who answers three surveys in an hour is one call back, not three. Responses without a
customer id are never merged. Contact details travel only when the customer consented. A site
publishes at most ``hot_alerts.rate_cap.per_site_per_day`` hot alerts a day; the rest go in one
``hot_digest`` alert for the day (:mod:`operators.rate_cap`). Each site's cooldown and cap are its
own, under the key of its shard of sites (:mod:`operators.site_shards`).

An alert's size is bounded whatever the response: the comment is cut at
``hot_alerts.max_comment_chars`` and the contact fields and journey stage at
:data:`~boucle.operators.alerts.FIELD_CHARS`, each with a visible marker (the full comment is in
the ``feedback`` table).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from boucle.config.locales import texts
from boucle.config.settings import SEVERITY_RANK, Settings
from boucle.config.times import LocalDays, iso_ms, local_days, now_ms
from boucle.operators.alerts import FIELD_CHARS, UNSET, Alert, alert_builder, alert_id, truncated
from boucle.operators.decode import DeadLetter, Feedback, internal_error
from boucle.operators.guard import batch_or_each, feedback_message
from boucle.operators.hot_rules import HotRules
from boucle.operators.privacy import mask_pii
from boucle.operators.rate_cap import SiteRateCap
from boucle.operators.site_shards import sharded_stateful_batch, site_values

__all__ = ["HotAlertBuilder", "hot_alerts"]

# The fields every hot alert has fixed: the call below then passes 15 keyword arguments, the
# most CPython passes without building a dict (see alert_builder).
_build_hot_alert = alert_builder(kind="hot", status="open", attribute=None)



class HotAlertBuilder:
    """Evaluates the rules on one response and builds the alert it deserves, if any."""

    def __init__(self, settings: Settings) -> None:
        self.rules = HotRules(settings)
        self.cooldown_ms = int(settings.hot_alerts.cooldown.total_seconds() * 1000)
        self.max_comment_chars = settings.hot_alerts.max_comment_chars
        questions = settings.questions()
        self._minimum = {name: question.min for name, question in questions.items()}
        # What an alert needs of its site, looked up once per alert (one in five responses).
        self._routing = {
            site.id: (site.region, site.owner, site.team, texts("alerts", site.language)["hot"], site.name or site.id)
            for site in settings.sites
        }
        self._upper = {name: name.upper() for name in questions}
        self.rate_cap = settings.hot_alerts.rate_cap
        self.lateness_ms = int(settings.windows.allowed_lateness.total_seconds() * 1000)
        # Who a site's hot_digest goes to: (site_id, region, owner, team, language, name).
        self.zones = settings.site_zones()
        self.digest_site = {
            site.id: (site.id, site.region, site.owner, site.team, site.language, site.name or site.id)
            for site in settings.sites
        }

    def calendar_of(self, site_id: str) -> LocalDays:
        """The local days of ``site_id``'s rate cap."""
        return local_days(self.zones.get(site_id, ""))

    def matches(self, event: Feedback) -> list[tuple[str, str]]:
        return self.rules.matches(event.scores, event.attributes, event.comment, event.channel)

    def build(
        self, event: Feedback, matched: list[tuple[str, str]] | None = None, detected_ms: int | None = None
    ) -> Alert | None:
        """The alert for ``event`` (``matched``: its rules, if already evaluated), or None.

        Laid out by a builder of the contract (:func:`~boucle.operators.alerts.alert_builder`)
        rather than :func:`~boucle.operators.alerts.new_alert`: this runs for every hot alert.
        """
        if matched is None:
            matched = self.matches(event)
        if not matched:
            return None
        region, owner, team, words, site_name = self._routing[event.site_id]
        severity = matched[0][1] if len(matched) == 1 else max((s for _, s in matched), key=SEVERITY_RANK.__getitem__)
        scores, attributes, raw_comment = event.scores, event.attributes, event.comment
        comment = truncated(mask_pii(raw_comment), self.max_comment_chars)  # masked whole: no PII cut in two
        minimum = self._minimum
        upper = self._upper
        message = f"{words['alert']} ({matched[0][0]}) {words['at']} {site_name}: " + ", ".join(
            [f"{upper[name]} {value}" for name, value in scores.items()]
        ) + "."
        if comment:
            short = comment if len(comment) <= 120 else comment[:117] + "..."
            message += f" {words['said']}: \u201c{short}\u201d"
        detected_ms = now_ms() if detected_ms is None else detected_ms
        customer = event.customer
        return _build_hot_alert(
            alert_id=alert_id("hot", event.site_id, event.event_id),
            severity=severity,
            site_id=event.site_id,
            region=region,
            triggers=["rule"],
            evidence={
                "rules": [name for name, _ in matched],
                "scores": scores,
                "attributes_at_minimum": sorted(
                    [name for name, value in attributes.items() if value == minimum[name]]
                ),
                "purchase_keywords": self.rules.mentions("purchase", raw_comment) if raw_comment else [],
            },
            message=message,
            owner=owner,
            team=team,
            event_time=iso_ms(event.ts_ms),
            detected_at=iso_ms(detected_ms),
            response={
                "event_id": event.event_id,
                "channel": event.channel,
                "journey_stage": truncated(event.journey_stage, FIELD_CHARS),
                "scores": scores,
                "attributes": attributes,
                "comment": comment,
                "language": truncated(event.language, FIELD_CHARS),
            },
            # Contact details travel only with consent (the key is absent otherwise).
            contact=(
                {key: truncated(customer[key], FIELD_CHARS) for key in ("id", "email", "phone") if customer.get(key)}
                if customer.get("consent_contact") is True else UNSET
            ),
            event_ms=event.ts_ms,
            detected_ms=detected_ms,
        )


class _CooldownLogic(StatefulBatchLogic):
    """Remembers, per customer of one site, the event time of their last hot alert, and the site's
    rate cap (:mod:`operators.rate_cap`): what went out today, what is held for the digest."""

    def __init__(self, builder: HotAlertBuilder, snapshot: dict | tuple | None, wall_clock: bool = False) -> None:
        self.builder = builder
        self.wall_clock = wall_clock  # live: a day's digest also goes out when the wall clock passes its end
        if isinstance(snapshot, tuple):  # (site_id, last alerts, cap state)
            self.site_id, last_alert, cap_state = snapshot
        else:  # a snapshot from before the rate cap: the last alerts only
            self.site_id, last_alert, cap_state = "", snapshot, None
        self.last_alert: dict[str, int] = dict(last_alert or {})
        self.cap = SiteRateCap(builder.rate_cap, builder.lateness_ms, cap_state)
        if self.site_id:
            self.cap.calendar = builder.calendar_of(self.site_id)
        # Live: the site's event time extrapolated by the wall time since its last response (as the
        # windows do), so a backlog of old days is not closed at once by today's wall clock.
        self.seen_event_ms: int | None = None
        self.seen_wall_ms = 0

    def on_batch(self, values: list[list[Feedback]]):
        out = []
        builder = self.builder
        cooldown = builder.cooldown_ms
        last_alert = self.last_alert
        detected_ms = now_ms()
        match_many = builder.rules.matches_many
        admit = self.cap.admit
        clock = 0
        for events in values:
            # Matching has no state: a failed batch is matched again event by event (guard).
            found, dead = batch_or_each("hot", match_many, events, feedback_message)
            out += dead
            if events:
                if not self.site_id:
                    self.site_id = events[0].site_id
                    self.cap.calendar = builder.calendar_of(self.site_id)
                clock = max(clock, max(e.ts_ms for e in events))
            for event, matched in found:
                try:  # free unless it raises (CPython 3.11+); the cooldown is set once the alert is built
                    customer_id = event.customer.get("id")
                    if customer_id:
                        previous = last_alert.get(customer_id)
                        if previous is not None and 0 <= event.ts_ms - previous < cooldown:
                            continue
                    alert = builder.build(event, matched, detected_ms)
                    if admit(alert, event.ts_ms):
                        out.append(alert)
                    if customer_id:
                        last_alert[customer_id] = event.ts_ms
                except Exception as exc:  # noqa: BLE001 - one dead letter, never a crash loop
                    out.append(internal_error("hot", feedback_message(event), exc))
        if clock:
            self.seen_event_ms = max(clock, self.seen_event_ms or clock)
            self.seen_wall_ms = detected_ms
        if clock and self.cap.days:
            out += self._digests(clock)
        if len(last_alert) > 1024:
            newest = max(last_alert.values())
            self.last_alert = {c: t for c, t in last_alert.items() if newest - t < cooldown}
        return out, StatefulBatchLogic.RETAIN

    def _digests(self, clock: int | None) -> list:
        site = self.builder.digest_site.get(self.site_id) or (self.site_id, "", "", "", "en", self.site_id)
        return self.cap.due(clock, site)

    def on_eof(self):
        return (self._digests(None) if self.cap.days else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        """Live only: when the earliest open day of the cap closes on the wall clock (a quiet site's digest
        does not wait for its next response)."""
        if not (self.wall_clock and self.cap.days and self.seen_event_ms is not None):
            return None
        closes_ms = self.cap.day_end_ms(min(self.cap.days)) + self.builder.lateness_ms + 1
        at_ms = self.seen_wall_ms + max(0, closes_ms - self.seen_event_ms)
        return datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc)

    def on_notify(self):
        if self.seen_event_ms is None:
            return [], StatefulBatchLogic.RETAIN
        return self._digests(self.seen_event_ms + max(0, now_ms() - self.seen_wall_ms)), StatefulBatchLogic.RETAIN

    def snapshot(self) -> tuple:
        return (self.site_id, dict(self.last_alert), self.cap.state())


@operator
def hot_alerts(
    step_id: str, up: KeyedStream[list[tuple[str, list[Feedback]]]], builder: HotAlertBuilder, shards: int,
    wall_clock: bool = False,
) -> Stream[dict[str, Any] | DeadLetter]:
    """Hot alerts (JSON-ready dicts) from shard items of ``shards`` shards (each site's events:
    :class:`~operators.site_shards.SiteShards`), and the :class:`~operators.decode.DeadLetter` of
    any event the step failed on (see :mod:`operators.guard`); each site's cooldown and cap its own."""
    cooled = sharded_stateful_batch(
        "cooldown", up, shards, lambda _site, snapshot: _CooldownLogic(builder, snapshot, wall_clock), notifies=wall_clock
    )
    return op.flat_map_batch("values", cooled, site_values)
