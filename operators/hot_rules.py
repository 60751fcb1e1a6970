"""Hot-alert rules compiled from config into fast predicates over one response.

A rule fires when all its conditions hold. Keyword lists match word starts in any configured
language (a French site also gets comments in English), case-insensitively.

>>> from flows.config import settings_from_dict
>>> settings = settings_from_dict({
...     "regions": [{"id": "north"}], "sites": [{"id": "s1", "region": "north"}],
...     "hot_alerts": {
...         "keywords": {"purchase": {"fr": ["achat", "commande"], "en": ["order"]}},
...         "rules": [
...             {"name": "csat_low_purchase", "severity": "critical",
...              "all": [{"score": "csat", "max": 2}, {"comment_mentions": "purchase"}]},
...             {"name": "detractor", "all": [{"score": "nps", "max": 6}]}]}})
>>> rules = HotRules(settings)
>>> rules.matches({"nps": 8, "csat": 2}, {}, "Ma commande est arrivée cassée", "store")
[('csat_low_purchase', 'critical')]
>>> rules.matches({"nps": 5, "csat": 4}, {}, "", "web")
[('detractor', 'medium')]
>>> rules.matches({"nps": 9, "csat": 2}, {}, "Personnel désagréable", "store")
[]
"""

from __future__ import annotations

import re
from typing import Callable

from flows.settings import Condition, Settings

__all__ = ["HotRules"]

Predicate = Callable[[dict, dict, str, str], bool]


class HotRules:
    def __init__(self, settings: Settings) -> None:
        self._minimum = {a.name: a.min for a in settings.attributes}
        self._keywords = {
            name: _keyword_pattern(words) for name, words in settings.hot_alerts.keywords.items()
        }
        self._rules: list[tuple[str, str, list[Predicate]]] = [
            (rule.name, rule.severity, [self._compile(c) for c in rule.all])
            for rule in settings.hot_alerts.rules
        ]

    def matches(self, scores: dict, attributes: dict, comment: str, channel: str) -> list[tuple[str, str]]:
        """``(rule name, severity)`` of every rule the response satisfies, in config order."""
        return [
            (name, severity)
            for name, severity, predicates in self._rules
            if all(p(scores, attributes, comment, channel) for p in predicates)
        ]

    def mentions(self, keyword_list: str, comment: str) -> list[str]:
        pattern = self._keywords.get(keyword_list)
        return sorted({m.lower() for m in pattern.findall(comment)}) if pattern and comment else []

    def _compile(self, cond: Condition) -> Predicate:
        if cond.score is not None or cond.attribute is not None:
            name = cond.score or cond.attribute
            field = 0 if cond.score is not None else 1
            low = -(2**31) if cond.min is None else cond.min
            high = 2**31 if cond.max is None else cond.max

            def bound(scores, attributes, comment, channel):
                value = (scores, attributes)[field].get(name)
                return value is not None and low <= value <= high

            return bound
        if cond.comment_mentions is not None:
            pattern = self._keywords[cond.comment_mentions]
            return lambda scores, attributes, comment, channel: bool(comment) and bool(pattern.search(comment))
        if cond.any_attribute_at_minimum:
            minimum = self._minimum
            return lambda scores, attributes, comment, channel: any(
                value == minimum.get(name) for name, value in attributes.items()
            )
        channels = frozenset(cond.channel_in or ())
        return lambda scores, attributes, comment, channel: channel in channels


def _keyword_pattern(words_by_language: dict[str, list[str]]) -> re.Pattern[str]:
    words = sorted({w for words in words_by_language.values() for w in words}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\w*", re.IGNORECASE)
