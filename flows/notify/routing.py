"""Who gets an alert, through which channel, and when: routes, the registry, quiet hours, digests.

Every route whose filters match an alert contributes recipients: registry roles (``owner``,
``team``, ``manager``, ``site`` of the alert's site, ``region_manager`` of its region), explicit
e-mail addresses and named webhooks. A recipient named by several routes gets the alert once, the
quickest way (at once rather than in a digest, the shorter digest). An alert without a site (a
regional incident) goes to its region's manager for every site role.

A registry value is an e-mail address or the ``id`` of a ``[[notify.contacts]]`` entry (which
gives its address, time zone, language and quiet hours). A role that names nobody reachable is
a *problem* (the caller dead-letters it with its reason): nothing is dropped silently.

When: a delivery is due at once, at the end of its digest period (periods aligned on UTC, e.g.
every hour on the hour), and never inside the recipient's quiet hours unless its severity is in
``quiet_hours.bypass`` (critical by default): then it waits for their end, local time.

>>> from boucle.config.settings import Settings
>>> settings = Settings(regions=[{"id": "north", "manager": "north@example.org"}],
...     sites=[{"id": "s1", "region": "north", "owner": "owner@example.org", "language": "en"}],
...     notify={"routes": [{"name": "hot", "kinds": ["hot"], "to": ["owner", "region_manager"]}]})
>>> router = Router(settings.notify, settings.sites, settings.regions)
>>> alert = {"alert_id": "a1", "status": "open", "kind": "hot", "severity": "high", "site_id": "s1", "region": "north"}
>>> [(p.recipient.target, p.route) for p in router.plan(alert, datetime(2026, 12, 3, 12, tzinfo=timezone.utc)).deliveries]
[('owner@example.org', 'hot'), ('north@example.org', 'hot')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from boucle.config.notify import Contact, Notify, QuietHours, Route
from boucle.config.settings import Region, Site
from boucle.flows.notify.quiet import quiet_until

__all__ = ["Plan", "Planned", "Recipient", "Router"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Recipient:
    """One destination: ``channel`` email/slack/teams/json; ``target`` an address or a webhook name."""

    channel: str
    target: str
    timezone: str
    language: str
    quiet: QuietHours | None = None


@dataclass(frozen=True)
class Planned:
    """One delivery of one alert: to whom, by which route, gathered in which digest, due when."""

    recipient: Recipient
    route: str
    digest: timedelta | None
    due: datetime
    group: str  # deliveries with the same group go out as one message ("" for an alert alone)
    held: bool = False  # due later because of quiet hours


@dataclass
class Plan:
    deliveries: list[Planned] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # roles that name nobody reachable


class Router:
    """Plans the deliveries of alerts; knows only the slice of the settings it needs."""

    def __init__(self, notify: Notify, sites: Iterable[Site], regions: Iterable[Region]) -> None:
        self.notify = notify
        self.sites = {s.id: s for s in sites}
        self.regions = {r.id: r for r in regions}
        self.contacts: dict[str, Contact] = {}
        for contact in notify.contacts:
            self.contacts[contact.id] = contact
            if contact.email:
                self.contacts.setdefault(contact.email, contact)
        self._region_language = {}
        for site in self.sites.values():
            self._region_language.setdefault(site.region, site.language)

    def routes_for(self, alert: dict[str, Any]) -> list[Route]:
        return [r for r in self.notify.routes if r.matches(
            kind=str(alert.get("kind", "")), severity=str(alert.get("severity", "")),
            status=str(alert.get("status", "")), region=str(alert.get("region") or ""),
            site_id=str(alert.get("site_id") or ""), attribute=alert.get("attribute"))]

    def plan(self, alert: dict[str, Any], now: datetime) -> Plan:
        plan = Plan()
        chosen: dict[tuple[str, str], tuple[Recipient, Route]] = {}
        for route in self.routes_for(alert):
            for recipient in self._recipients(route, alert, plan.problems):
                key = (recipient.channel, recipient.target)
                if key not in chosen or _quicker(route, chosen[key][1]):
                    chosen[key] = (recipient, route)
        for recipient, route in chosen.values():
            plan.deliveries.append(self._when(alert, recipient, route, now))
        return plan

    # ---- who ----
    def _recipients(self, route: Route, alert: dict[str, Any], problems: list[str]) -> list[Recipient]:
        site = self.sites.get(str(alert.get("site_id") or ""))
        region = self.regions.get(str(alert.get("region") or (site.region if site else "")))
        out = []
        for role in route.to:
            value = self._role_value(role, site, region, alert)
            recipient = self._person(value, site, region)
            if recipient is None:
                where = site.id if site else f"region {region.id}" if region else "no site or region"
                problems.append(f"route {route.name}: {role} of {where} ({value or 'empty'}) has no e-mail address")
            else:
                out.append(recipient)
        for address in route.emails:
            person = self._person(address, site, region)
            if person is not None:
                out.append(person)
        for name in route.webhooks:
            hook = self.notify.webhooks[name]
            quiet = None if hook.format == "json" else self.notify.quiet_hours  # machines do not sleep
            out.append(Recipient(hook.format, name, hook.timezone or self._zone(None, site, region),
                                 hook.language or self._language(None, site, region), quiet))
        return out

    @staticmethod
    def _role_value(role: str, site: Site | None, region: Region | None, alert: dict[str, Any]) -> str:
        if role == "region_manager" or site is None:  # a regional incident: its region's manager
            return region.manager if region else str(alert.get("owner") or "")
        return {"owner": site.owner, "team": site.team_email or site.team, "manager": site.manager,
                "site": site.email}[role]

    def _person(self, value: str, site: Site | None, region: Region | None) -> Recipient | None:
        contact = self.contacts.get(value)
        address = (contact.email if contact and contact.email else value) if value else ""
        if "@" not in address:
            return None
        return Recipient("email", address, self._zone(contact, site, region), self._language(contact, site, region),
                         contact.quiet_hours if contact and contact.quiet_hours else self.notify.quiet_hours)

    def _zone(self, contact: Contact | None, site: Site | None, region: Region | None) -> str:
        return ((contact.timezone if contact else "") or (site.timezone if site else "")
                or (region.timezone if region else "") or self.notify.timezone)

    def _language(self, contact: Contact | None, site: Site | None, region: Region | None) -> str:
        return ((contact.language if contact else "") or (site.language if site else "")
                or (self._region_language.get(region.id, "") if region else "") or "en")

    # ---- when ----
    def _when(self, alert: dict[str, Any], recipient: Recipient, route: Route, now: datetime) -> Planned:
        due, group = now, ""
        if route.digest is not None:
            period = route.digest
            start = _EPOCH + ((now - _EPOCH) // period) * period
            due = start + period
            where = alert.get("site_id") or f"region:{alert.get('region') or ''}"
            group = f"{recipient.channel}|{recipient.target}|{where}|{route.name}|{int(start.timestamp())}"
        quiet = recipient.quiet if route.quiet_hours else None
        if quiet is not None and str(alert.get("severity")) in quiet.bypass:
            quiet = None
        release = quiet_until(due, recipient.timezone, quiet)
        if release is not None:
            due = release
            if group:  # every digest of the night goes out as one in the morning
                group = group.rsplit("|", 1)[0] + f"|held-{int(release.timestamp())}"
        return Planned(recipient, route.name, route.digest, due, group, held=release is not None)


def _quicker(route: Route, than: Route) -> bool:
    if route.digest is None or than.digest is None:
        return route.digest is None and than.digest is not None
    return route.digest < than.digest
