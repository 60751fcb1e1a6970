"""Messages written from Jinja2 templates (``flows/notify/templates``) in the recipient's language.

One layout per medium (``subject``, ``email.txt``, ``email.html``, ``chat.md``) fed with the
words of the language (the ``common`` and ``notify`` sections of :mod:`boucle.config.locales`: fr, en, de, es,
it, nl; any other language, and any word a language lacks, in English). A language may also bring its own layout: ``email.html.fr.j2`` is chosen before
``email.html.j2`` for French. What a customer wrote is escaped for its medium: HTML escaping in
the HTML part (autoescape), Slack's ``&<>`` in Slack messages; the text part is plain text.
Chat messages leave the customer's contact details out (a channel is read by more people).

>>> renderer = Renderer({"nps": {"fr": "Recommandation", "en": "Recommendation"}}, {"s1": "Bercy"}, {})
>>> alert = {"alert_id": "a1", "kind": "hot", "status": "open", "severity": "high", "site_id": "s1",
...          "message": "NPS 2.", "response": {"comment": "<b>nul</b>"}, "event_time": "2026-12-03T10:00:00.000Z"}
>>> mail = renderer.email([alert], "fr")
>>> mail.subject
'[Boucle] Élevée · Alerte client · Bercy'
>>> "&lt;b&gt;nul&lt;/b&gt;" in mail.html, "<b>nul</b>" in mail.text
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from boucle.config.locales import label_in, texts
from boucle.sinks.notify.chat import slack_escape, slack_payload, teams_payload

__all__ = ["Email", "Renderer", "words"]

_COLOURS = {"low": "#999999", "medium": "#e0a800", "high": "#e8590c", "critical": "#c92a2a"}


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=None)
def words(language: str) -> tuple[str, dict[str, Any]]:
    """The language served for ``language`` and its words (kinds, severities, statuses, labels).

    >>> words("de-AT")[1]["kind"]["hot"], words("sv")[0]
    ('Kundenalarm', 'en')
    """
    common, notify = texts("common", language), texts("notify", language)
    return common["_language"], {**common, **notify}


class Renderer:
    """Renders alerts for one medium and language; ``questions`` are ``{name: {language: label}}``."""

    def __init__(self, questions: dict[str, dict[str, str]], sites: dict[str, str], regions: dict[str, str]) -> None:
        self.questions, self.sites, self.regions = questions, sites, regions
        loader = PackageLoader("boucle.flows.notify", "templates")
        common = dict(loader=loader, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self._html = Environment(autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False), **common)
        self._chat = {
            "slack": Environment(autoescape=False, finalize=_escaped(slack_escape), **common),
            "teams": Environment(autoescape=False, **common),
        }

    # ---- the facts of an alert, in words ----
    def view(self, alert: dict[str, Any], language: str, *, contact: bool = True) -> dict[str, Any]:
        lang, t = words(language)
        response = alert.get("response") if isinstance(alert.get("response"), dict) else {}
        site_id, region = str(alert.get("site_id") or ""), str(alert.get("region") or "")
        attribute = alert.get("attribute")
        evidence = alert.get("evidence") if isinstance(alert.get("evidence"), dict) else {}
        scores = response.get("scores") or evidence.get("scores") or {}
        scores = scores if isinstance(scores, dict) else {}
        person = alert.get("contact") if contact and isinstance(alert.get("contact"), dict) else {}
        return {
            "alert_id": str(alert.get("alert_id", "")), "kind": alert.get("kind"), "status": alert.get("status"),
            "kind_label": t["kind"].get(alert.get("kind"), str(alert.get("kind", ""))),
            "status_label": t["status"].get(alert.get("status"), str(alert.get("status", ""))),
            "severity_label": t["severity"].get(alert.get("severity"), str(alert.get("severity", ""))),
            "colour": _COLOURS.get(alert.get("severity"), "#999999"),
            "where": self.sites.get(site_id) or site_id or self.regions.get(region) or region,
            "region_name": self.regions.get(region, region) if site_id else "",
            "question": _label(self.questions, attribute, lang) if attribute else "",
            "scores": ", ".join(f"{_label(self.questions, k, lang)} {v}" for k, v in scores.items()),
            "message": str(alert.get("message", "")),
            "comment": str(response.get("comment") or ""),
            "contact": " · ".join(str(person[k]) for k in ("email", "phone") if person.get(k)),
            "event_time": str(alert.get("event_time", "")),
        }

    def _context(self, alerts: list[dict[str, Any]], language: str, contact: bool = True) -> dict[str, Any]:
        lang, t = words(language)
        return {"lang": lang, "t": t, "digest": len(alerts) > 1,
                "alerts": [self.view(a, lang, contact=contact) for a in alerts]}

    def _render(self, env: Environment, name: str, context: dict[str, Any]) -> str:
        template = env.select_template([f"{name}.{context['lang']}.j2", f"{name}.j2"])
        return template.render(**context)

    # ---- media ----
    def _subject(self, context: dict[str, Any]) -> str:
        """One line whatever the alert says (a header cannot hold a line break), at most 200 characters."""
        text = " ".join(self._render(self._chat["teams"], "subject", context).split())
        return "".join(c for c in text if c.isprintable())[:200]

    def email(self, alerts: list[dict[str, Any]], language: str) -> Email:
        context = self._context(alerts, language)
        subject = self._subject(context)
        context["subject"] = subject
        return Email(subject, self._render(self._html, "email.txt", context),
                     self._render(self._html, "email.html", context))

    def chat(self, alerts: list[dict[str, Any]], language: str, fmt: str) -> dict[str, Any]:
        """A Slack or Teams body; the title is the subject, the facts those of a single alert."""
        context = self._context(alerts, language, contact=False)
        title = self._subject(context).removeprefix("[Boucle] ")
        text = self._render(self._chat[fmt], "chat.md", context).strip()
        t, facts = context["t"], {}
        if len(alerts) == 1:
            a = context["alerts"][0]
            facts = {t["severity_name"]: a["severity_label"], t["site"]: a["where"]}
            if a["region_name"]:
                facts[t["region"]] = a["region_name"]
            if a["question"]:
                facts[t["question"]] = a["question"]
        build = slack_payload if fmt == "slack" else teams_payload
        return build(title, text, facts, context=" · ".join(a["alert_id"] for a in context["alerts"][:5]))

    @staticmethod
    def json_body(alerts: list[dict[str, Any]], delivery: str, recipient: str) -> bytes:
        """The generic webhook's body: the alerts as published (contract v1), and who it is for."""
        return orjson.dumps({"type": "boucle.notification", "delivery": delivery, "recipient": recipient,
                             "digest": len(alerts) > 1, "alerts": alerts})


def _escaped(escape: Callable[[str], str]) -> Callable[[Any], str]:
    return lambda value: escape("" if value is None else str(value))


def _label(questions: dict[str, dict[str, str]], name: str, language: str) -> str:
    return label_in(questions.get(name, {}), language) or name
