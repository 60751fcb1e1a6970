"""Hot-alert rules compiled from config into fast predicates over one response.

A rule fires when all its conditions hold. Keyword lists match word starts in any configured
language (a French site also gets comments in English), case-insensitively.

>>> from boucle.config.loader import settings_from_dict
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
from typing import Any, Callable, Iterable

from boucle.config.settings import Condition, Settings

__all__ = ["HotRules"]

class HotRules:
    """All rules compiled into one Python function, generated from the config.

    Generated because this runs for every response: one function with inlined comparisons costs a
    fraction of a chain of closures. Only literals from the validated config (through ``repr``)
    and precompiled patterns enter the generated code.
    """

    def __init__(self, settings: Settings) -> None:
        self._minimum = {a.name: a.min for a in settings.attributes}
        self._keywords = {
            name: _keyword_pattern(words) for name, words in settings.hot_alerts.keywords.items()
        }
        self._outcomes = [(rule.name, rule.severity) for rule in settings.hot_alerts.rules]
        self._match, self._match_many = self._generate(settings)

    def matches(self, scores: dict, attributes: dict, comment: str, channel: str) -> list[tuple[str, str]]:
        """``(rule name, severity)`` of every rule the response satisfies, in config order."""
        return self._match(scores, attributes, comment, channel)

    def matches_many(self, events: Iterable[Any]) -> list[tuple[Any, list[tuple[str, str]]]]:
        """``(event, its matches)`` of the events (with ``scores``, ``attributes``, ``comment``,
        ``channel`` attributes) that satisfy a rule: one call per batch, most events match none."""
        return self._match_many(events)

    def mentions(self, keyword_list: str, comment: str) -> list[str]:
        pattern = self._keywords.get(keyword_list)
        return sorted(set(pattern.findall(comment.lower()))) if pattern and comment else []

    def _generate(self, settings: Settings) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """``match`` (one response) and ``match_many`` (a batch of events), from the same tests."""
        names: dict[str, object] = {"OUTCOMES": self._outcomes, "MINIMUM": self._minimum}
        ratings: dict[str, str] = {}  # lookup -> the local variable it sets, once per response
        tests = [
            " and ".join(self._test(cond, f"{i}_{j}", names, ratings) for j, cond in enumerate(rule.all))
            for i, rule in enumerate(settings.hot_alerts.rules)
        ]
        single = ["def match(scores, attributes, comment, channel):", "    out = []"]
        single += [f"    {local} = {lookup}" for lookup, local in ratings.items()]
        for i, test in enumerate(tests):
            single += [f"    if {test}:", f"        out.append(OUTCOMES[{i}])"]
        single.append("    return out")
        # The batch form loads only the fields the rules read and makes a list only on a match.
        used = [field for field in ("scores", "attributes", "comment", "channel") if any(field in t for t in tests)]
        used += [field for field in ("scores", "attributes") if field not in used and any(field in r for r in ratings)]
        many = ["def match_many(events):", "    found = []", "    for event in events:"]
        many += [f"        {field} = event.{field}" for field in used]
        many += [f"        {local} = {lookup}" for lookup, local in ratings.items()]
        many.append("        out = None")
        for i, test in enumerate(tests):
            many += [
                f"        if {test}:",
                f"            out = [OUTCOMES[{i}]] if out is None else out + [OUTCOMES[{i}]]",
            ]
        many += ["        if out is not None:", "            found.append((event, out))", "    return found"]
        exec(compile("\n".join(single + many), "<hot_rules>", "exec"), names)  # noqa: S102
        return names["match"], names["match_many"]  # type: ignore[return-value]

    def _test(self, cond: Condition, tag: str, names: dict[str, object], ratings: dict[str, str]) -> str:
        if cond.score is not None or cond.attribute is not None:
            source = "scores" if cond.score is not None else "attributes"
            lookup = f"{source}.get({(cond.score or cond.attribute)!r}, -1)"  # -1: not answered
            local = ratings.setdefault(lookup, f"R{len(ratings)}")
            low = 0 if cond.min is None else max(cond.min, 0)  # ratings are never negative
            high = 2**31 if cond.max is None else cond.max
            return f"({low} <= {local} <= {high})"
        if cond.comment_mentions is not None:
            names[f"K{tag}"] = self._keywords[cond.comment_mentions].search
            return f"(comment and K{tag}(comment.lower()) is not None)"
        if cond.any_attribute_at_minimum:
            minimums = set(self._minimum.values())
            if len(minimums) == 1:
                return f"({minimums.pop()!r} in attributes.values())"
            return "any(v == MINIMUM.get(k) for k, v in attributes.items())"
        names[f"C{tag}"] = frozenset(cond.channel_in or ())
        return f"(channel in C{tag})"


def _keyword_pattern(words_by_language: dict[str, list[str]]) -> re.Pattern[str]:
    """Word starts, matched in lower-cased text: twice as fast as ``re.IGNORECASE`` on Unicode."""
    words = sorted({w.lower() for words in words_by_language.values() for w in words}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\w*")
