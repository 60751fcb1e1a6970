"""Chat message bodies: what a Slack incoming webhook and a Microsoft Teams workflow accept.

- Slack: ``{"text": ..., "blocks": [...]}``: ``text`` is the notification's fallback, the blocks
  a header, a mrkdwn section, the facts as fields and a context line. In mrkdwn ``&``, ``<``
  and ``>`` must be escaped (:func:`slack_escape`), else a customer's ``<!channel>`` pings
  everybody: the caller escapes the text it did not write.
- Teams: a message with one Adaptive Card (1.4) attachment, the format of Teams' "Post to a
  channel when a webhook request is received" workflows (Office 365 connectors' MessageCard is
  retired): a bold title, the text, the facts as a FactSet.

>>> body = slack_payload("Hot alert", "NPS 2 at *Bercy*", {"Severity": "high"}, context="boucle")
>>> body["text"], [b["type"] for b in body["blocks"]]
('Hot alert: NPS 2 at *Bercy*', ['header', 'section', 'section', 'context'])
>>> card = teams_payload("Hot alert", "NPS 2", {"Severity": "high"})["attachments"][0]
>>> card["contentType"], card["content"]["body"][2]["facts"]
('application/vnd.microsoft.card.adaptive', [{'title': 'Severity', 'value': 'high'}])
>>> slack_escape("<!channel> & co")
'&lt;!channel&gt; &amp; co'
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["slack_escape", "slack_payload", "teams_payload"]

_SLACK_TEXT_MAX = 3000  # a section's text is refused above this
_HEADER_MAX = 150


def slack_escape(text: str) -> str:
    """Text shown as-is in Slack mrkdwn: ``&``, ``<``, ``>`` escaped (Slack's own three)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(title: str, text: str, facts: Mapping[str, str] | None = None, *, context: str = "") -> dict[str, Any]:
    """An incoming-webhook body: ``title`` plain text (escaped here for the mrkdwn fallback), ``text``
    mrkdwn (already escaped by the caller)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SLACK_TEXT_MAX)}},
    ]
    if facts:
        fields = [{"type": "mrkdwn", "text": f"*{slack_escape(k)}*\n{slack_escape(v)}"} for k, v in facts.items()]
        blocks.append({"type": "section", "fields": fields[:10]})  # Slack takes at most 10 fields
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context, _SLACK_TEXT_MAX)}]})
    return {"text": _cut(f"{slack_escape(title)}: {text}", _SLACK_TEXT_MAX), "blocks": blocks}


def teams_payload(title: str, text: str, facts: Mapping[str, str] | None = None, *, context: str = "") -> dict[str, Any]:
    """A Teams workflow body: one Adaptive Card with the title, the text and the facts."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "TextBlock", "text": text, "wrap": True},
    ]
    if facts:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": str(v)} for k, v in facts.items()]})
    if context:
        body.append({"type": "TextBlock", "text": context, "isSubtle": True, "size": "Small", "wrap": True})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
