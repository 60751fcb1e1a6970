"""Typed settings of ``boucle notify``: channels, routes, quiet hours, digests, retries.

Secrets never come from the file: the SMTP login is read from ``BOUCLE_SMTP_USERNAME`` /
``BOUCLE_SMTP_PASSWORD``, and a webhook names the environment variables that hold its URL
(``url_env``) and its signing secret (``secret_env``). Shipped empty: no route, nothing sent.

>>> route = Route(name="hot", kinds=["hot"], min_severity="high", to=["owner"])
>>> route.matches(kind="hot", severity="critical", status="open", region="r", site_id="s", attribute=None)
True
>>> QuietHours(start="21:00", end="07:00").start
datetime.time(21, 0)
>>> Webhook(format="slack", url="https://hooks.slack.example/x").format
'slack'
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from boucle.config.durations import Duration
from boucle.config.locales import is_language_code

__all__ = ["Contact", "Notify", "QuietHours", "Retry", "Route", "Smtp", "Webhook", "check_language", "check_timezone", "Language", "ROLES"]

SEVERITIES = ("low", "medium", "high", "critical")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
# Who in the registry a route may name: the site's owner, team, manager and e-mail; its region's manager.
ROLES = ("owner", "team", "manager", "site", "region_manager")


def check_timezone(name: str) -> str:
    """An IANA time zone name (``Europe/Paris``), or empty (inherit).

    >>> check_timezone("Mars/Olympus")
    Traceback (most recent call last):
    ...
    ValueError: unknown time zone 'Mars/Olympus' (an IANA name such as 'Europe/Paris')
    """
    if name:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Europe/Paris')") from None
    return name


TimeZone = Annotated[str, AfterValidator(check_timezone)]


def check_language(code: str) -> str:
    """A language tag (``de``, ``de-CH``, ``sv``), or empty (inherit); messages are written in it where
    :mod:`boucle.config.locales` ships it (fr, en, de, es, it, nl), else in English.

    >>> check_language("de-CH")
    'de-CH'
    >>> check_language("German")
    Traceback (most recent call last):
    ...
    ValueError: 'German' is not a language code (a tag such as 'de', 'de-CH' or 'sv')
    """
    if code and not is_language_code(code):
        raise ValueError(f"{code!r} is not a language code (a tag such as 'de', 'de-CH' or 'sv')")
    return code


Language = Annotated[str, AfterValidator(check_language)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHours(_Strict):
    """Local hours (the recipient's time zone) when only ``bypass`` alerts go out; the rest waits for ``end``."""

    start: time = time(21, 0)
    end: time = time(7, 0)
    bypass: list[Literal[SEVERITIES]] = ["critical"]


class Smtp(_Strict):
    """The mail relay. ``security``: ``starttls`` (upgrade on the submission port), ``tls`` (implicit TLS,
    port 465) or ``none`` (loopback relays only). The login comes from ``BOUCLE_SMTP_USERNAME`` and
    ``BOUCLE_SMTP_PASSWORD``, never from this file."""

    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    from_address: str = "boucle@localhost"
    timeout: Duration = timedelta(seconds=20)


class Webhook(_Strict):
    """A chat or JSON endpoint. ``format``: ``slack`` (incoming webhook), ``teams`` (Adaptive Card, as
    Teams workflows accept), ``json`` (the alert, signed with HMAC-SHA256 when ``secret_env`` is set).
    The URL is ``url`` or, better (it is a secret for Slack and Teams), the variable ``url_env``."""

    format: Literal["slack", "teams", "json"]
    url: str = ""
    url_env: str = ""
    secret_env: str = ""
    timezone: TimeZone = ""  # for quiet hours; empty: the site's
    language: Language = ""  # empty: the site's

    @model_validator(mode="after")
    def _one_url(self) -> "Webhook":
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of url and url_env")
        if self.secret_env and self.format != "json":
            raise ValueError("secret_env signs json webhooks only (Slack and Teams URLs carry their own secret)")
        return self


class Contact(_Strict):
    """Preferences of a person the registry names (by e-mail address or by a name used as owner/team/manager)."""

    id: str
    email: str = ""
    timezone: TimeZone = ""
    language: Language = ""
    quiet_hours: QuietHours | None = None


class Route(_Strict):
    """Alerts matching every non-empty filter go to ``to`` (registry roles), ``emails`` and ``webhooks``
    (names of ``notify.webhooks``), at once or gathered in a ``digest`` of that period per site."""

    name: str
    kinds: list[str] = []
    severities: list[Literal[SEVERITIES]] = []
    min_severity: Literal[SEVERITIES] | None = None
    statuses: list[Literal["open", "updated", "resolved"]] = []
    regions: list[str] = []
    sites: list[str] = []
    attributes: list[str] = []  # the attribute or question an alert is about
    to: list[Literal[ROLES]] = []
    emails: list[str] = []
    webhooks: list[str] = []
    digest: Duration | None = None
    quiet_hours: bool = True

    @model_validator(mode="after")
    def _someone(self) -> "Route":
        if not (self.to or self.emails or self.webhooks):
            raise ValueError("a route needs recipients: to (registry roles), emails or webhooks")
        if bad := [e for e in self.emails if "@" not in e or any(c.isspace() or c in ",;<>" for c in e)]:
            raise ValueError(f"emails must be plain addresses (name@domain), got {', '.join(map(repr, bad))}")
        if self.digest is not None and (self.digest <= timedelta(0) or 86400 % self.digest.total_seconds()):
            raise ValueError(f"digest must divide a day (e.g. '15m', '1h', '1d'), got {self.digest}")
        return self

    def matches(self, *, kind: str, severity: str, status: str, region: str, site_id: str,
                attribute: str | None) -> bool:
        checks = [
            (self.kinds, kind), (self.severities, severity), (self.statuses, status),
            (self.regions, region), (self.sites, site_id), (self.attributes, attribute),
        ]
        if any(allowed and value not in allowed for allowed, value in checks):
            return False
        return self.min_severity is None or _RANK.get(severity, -1) >= _RANK[self.min_severity]


class Retry(_Strict):
    """Exponential backoff with jitter between attempts; after ``attempts`` failures the delivery goes
    to ``notify.dlq_topic`` with its reason."""

    attempts: int = Field(6, ge=1, le=100)
    initial: Duration = timedelta(seconds=2)
    max: Duration = timedelta(minutes=10)
    jitter: Duration = timedelta(seconds=2)


class Notify(_Strict):
    """``boucle notify``: consumes ``kafka.alerts_topic`` under ``group_id`` and delivers per ``routes``."""

    group_id: str = "boucle-notify"
    dlq_topic: str = "boucle.notify-dlq"
    ledger: str = "var/notify.sqlite"  # the local delivery ledger (what was delivered, what waits)
    # Delivered and dead-lettered rows are forgotten after this: keep it above the alert topic's retention.
    ledger_retention: Duration = timedelta(days=30)
    start: Literal["beginning", "end"] = "beginning"  # where a group without committed offsets starts
    timezone: TimeZone = "UTC"  # recipients whose contact, site and region name none
    quiet_hours: QuietHours | None = None  # everyone's, unless a contact has its own; None: no quiet hours
    smtp: Smtp = Smtp()
    webhooks: dict[str, Webhook] = {}
    contacts: list[Contact] = []
    routes: list[Route] = []
    retry: Retry = Retry()
    http_timeout: Duration = timedelta(seconds=10)
    poll_interval: Duration = timedelta(seconds=1)  # how often held deliveries and retries are looked at
    report_every: Duration = timedelta(minutes=5)  # `notify run` prints its delivery metrics this often

    @field_validator("routes")
    @classmethod
    def _unique_names(cls, routes: list[Route]) -> list[Route]:
        names = [r.name for r in routes]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"route names must be unique, repeated: {', '.join(dup)}")
        return routes

    @model_validator(mode="after")
    def _known_webhooks(self) -> "Notify":
        for i, route in enumerate(self.routes):
            unknown = [w for w in route.webhooks if w not in self.webhooks]
            if unknown:
                raise ValueError(f"routes[{i}] ({route.name}): unknown webhook {', '.join(unknown)}"
                                 f" (known: {', '.join(self.webhooks) or 'none'})")
        return self
