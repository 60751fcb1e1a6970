"""Comment themes: what customers complain about, in the languages the catalogue gives, with negations understood.

A theme is a complaint (an irritant), found by cue phrases (regular expressions, case-insensitive,
whole words): an attribute's ``complaints`` in the catalogue, and ``[themes.lexicons]`` for themes
that are not attributes (:meth:`boucle.config.settings.Settings.theme_lexicons`). Nothing is built
in: a catalogue without cues has no themes. A comment is matched against the cues of its language
(its tag, then its primary subtag: ``de-CH`` gets the ``de-CH`` and ``de`` cues); a language without
cues matches nothing. A cue is *negated*, hence not counted, when a negation word of its language
(fr, en, de, es, it, nl) stands among the four words before it in the same clause ("pas trop long",
"not too long", "nicht schmutzig"); cues that hold a negation word themselves ("pas aimable", "not
available") ignore the negations around them. A language without negation words just matches cues.

>>> detect = ThemeDetector({"waiting_time": {"fr": ["attente interminable", "trop long(?:ue)?"], "en": ["too long"]},
...                         "cleanliness": {"de": ["schmutzig", "nicht sauber"]}})
>>> detect("Attente interminable à l'accueil.", "fr"), detect("Attente pas trop longue, merci.", "fr")
(['waiting_time'], [])
>>> detect("The wait was not too long.", "en"), detect("Der Laden war schmutzig.", "de-CH")
([], ['cleanliness'])
>>> detect("Gar nicht schmutzig.", "de"), detect("Nicht sauber.", "de"), detect("Der Laden war schmutzig.", "sv")
([], ['cleanliness'], [])

Per site (its state its own, keyed by shard of sites: :mod:`operators.site_shards`), comments are
counted per theme and event-time window (``comment_themes`` rows when a window closes); a
``theme_surge`` alert fires when a theme's share of the window's comments jumps above its recent
baseline (an emerging irritant).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from boucle.config.locales import language_tags, texts
from boucle.config.settings import Site, Themes
from boucle.config.times import iso_ms, local_days
from boucle.operators.alerts import alert_id, new_alert
from boucle.operators.decode import Feedback
from boucle.operators.guard import batch_or_each, feedback_message
from boucle.operators.site_shards import sharded_stateful_batch, site_values
from boucle.operators.windows import window_bounds

__all__ = ["BASELINE_ALPHA", "NEGATION_LANGUAGES", "THEME_COLUMNS", "ThemeDetector", "ThemeWindows", "comment_themes"]

Lexicons = Mapping[str, Mapping[str, Sequence[str]]]  # theme: {language tag: [cue regexes]}
_PUNCTUATION = r"[,.;:!?()]"
_WORD = re.compile(r"\w+")
THEME_COLUMNS = ("site_id", "region", "window_length", "window_start", "theme", "n", "comments", "day")


@dataclass(frozen=True)
class _Negation:
    """How one language negates: the words, where a clause ends, and what makes a cue carry its own negation."""

    words: frozenset[str]  # a cue after one of these (four words back, same clause) is negated
    clause_end: re.Pattern[str]
    bearing: frozenset[str]  # a cue holding one of these words (or of ``words``) negates itself

    @classmethod
    def of(cls, words: str, conjunctions: str = "", bearing: str = "") -> _Negation:
        ends = _PUNCTUATION + (rf"|\b(?:{'|'.join(conjunctions.split())})\b" if conjunctions else "")
        return cls(frozenset(words.split()), re.compile(ends), frozenset(words.split()) | frozenset(bearing.split()))


# Short lists of each language's common negations (primary subtags); ``n``, ``didn``... are what is
# left of an elision or contraction once split into words. Conjunctions end a clause per language:
# a list shared by all would cut French clauses at the Dutch "en".
_NEGATIONS = {
    "fr": _Negation.of("pas ne n jamais aucun aucune sans ni guère", "mais et", "personne rien"),
    "en": _Negation.of("not no never without nor didn wasn isn weren aren don doesn hardly single", "but and",
                       "nobody nothing"),
    "de": _Negation.of("nicht kein keine keinen keinem keiner keines nie niemals ohne weder kaum", "aber und sondern",
                       "niemand nichts"),
    "es": _Negation.of("no nunca jamás sin ni ningún ninguna ninguno tampoco apenas", "pero y sino", "nadie nada"),
    "it": _Negation.of("non mai senza né nessun nessuna nessuno neanche nemmeno mica", "ma e però", "niente nulla"),
    "nl": _Negation.of("niet geen nooit zonder noch nauwelijks", "maar en", "niemand niets"),
}
_NO_NEGATION = _Negation(frozenset(), re.compile(_PUNCTUATION), frozenset())
NEGATION_LANGUAGES = tuple(sorted(_NEGATIONS))
_NOTHING = re.compile(r"(?!x)x")


@dataclass(frozen=True)
class _Matcher:
    """One language's cues as one alternation (longest first), with each cue's theme and self-negation."""

    pattern: re.Pattern[str]
    cues: tuple[tuple[str, bool], ...]  # (theme, carries its own negation) per alternation group
    negation: _Negation


class ThemeDetector:
    """``detector(comment, language) -> sorted themes`` (complaints only, negations excluded).

    ``lexicons``: ``{theme: {language tag: [cue regexes]}}``; none (or empty): no themes at all."""

    def __init__(self, lexicons: Lexicons | None = None) -> None:
        self._cues: dict[str, list[tuple[str, str]]] = {}  # normalised tag -> [(cue, theme)]
        for theme, by_language in (lexicons or {}).items():
            for language, cues in by_language.items():
                tag = language_tags(language)[0]
                self._cues.setdefault(tag, []).extend((cue, theme) for cue in cues)
        self.themes = sorted({theme for cues in self._cues.values() for _, theme in cues})
        self._matchers: dict[str, _Matcher] = {}

    def languages(self) -> list[str]:
        """The language tags that have cues (normalised)."""
        return sorted(self._cues)

    def __call__(self, comment: str, language: str = "") -> list[str]:
        if not comment:
            return []
        matcher = self._matchers.get(language) or self._matcher(language)
        if not matcher.cues:
            return []
        text = comment.replace("\u2019", "'")
        found: set[str] = set()
        for match in matcher.pattern.finditer(text):
            theme, bearing = matcher.cues[int(match.lastgroup[1:])]
            if theme in found:
                continue
            if not bearing and _negated(text[: match.start()], matcher.negation):
                continue
            found.add(theme)
        return sorted(found)

    def _matcher(self, language: str) -> _Matcher:
        tags = language_tags(language)
        negation = _NEGATIONS.get(tags[-1], _NO_NEGATION) if tags else _NO_NEGATION
        cues = sorted((c for tag in tags for c in self._cues.get(tag, ())), key=lambda c: -len(c[0]))
        alternation = "|".join(f"(?P<c{i}>{cue})" for i, (cue, _) in enumerate(cues))
        pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE) if cues else _NOTHING
        meta = tuple((theme, _bears_negation(cue, negation)) for cue, theme in cues)
        matcher = self._matchers[language] = _Matcher(pattern, meta, negation)
        return matcher


def _bears_negation(cue: str, negation: _Negation) -> bool:
    return any(word in negation.bearing for word in _WORD.findall(cue.lower()))


def _negated(before: str, negation: _Negation) -> bool:
    if not negation.words:
        return False
    clause = negation.clause_end.split(before.lower())[-1]
    words = _WORD.findall(clause)[-4:]
    return any(w in negation.words for w in words)


# Weight of the latest closed window in a theme's baseline share (exponentially weighted).
BASELINE_ALPHA = 0.2


@dataclass
class _SiteThemes:
    windows: dict[int, Counter] = field(default_factory=dict)  # window_start -> Counter(theme, "")
    baseline: dict[str, float] = field(default_factory=dict)
    closed: int = 0  # windows folded into the baseline
    surging: set[str] = field(default_factory=set)
    max_ts: int = 0

    def snapshot(self) -> tuple:
        """``(windows, baseline, closed, surging, max_ts)`` as plain dicts, tuples and numbers."""
        windows = {start: dict(counts) for start, counts in self.windows.items()}
        return windows, dict(self.baseline), self.closed, tuple(sorted(self.surging)), self.max_ts

    @classmethod
    def from_snapshot(cls, snapshot: tuple) -> _SiteThemes:
        windows, baseline, closed, surging, max_ts = snapshot
        return cls({start: Counter(counts) for start, counts in windows.items()}, dict(baseline), closed,
                   set(surging), max_ts)


class ThemeWindows:
    """Theme counts of one site per event-time window; rows and surge alerts when windows close.

    ``themes`` (the settings section) gives the window and the surge rule: a theme surges when, in
    a closed window, ``n >= min_count`` and its share of the window's comments is at least
    ``ratio`` x and ``min_jump`` above its baseline (an exponentially weighted share over the
    previous windows, once ``min_windows`` exist). ``snapshot`` (from :meth:`snapshot`) resumes the
    counts; the site, lexicons and rule always come from the current configuration.
    """

    def __init__(self, site: Site, detector: ThemeDetector, themes: Themes, lateness_ms: int,
                 snapshot: tuple | None = None, zone: str = "") -> None:
        self.site, self.detector, self.rule, self.lateness_ms = site, detector, themes, lateness_ms
        self.window_ms = int(themes.window.total_seconds() * 1000)
        # The site's local days (``zone``: its IANA zone; empty: UTC), as for the score windows.
        self.days = local_days(zone)
        self.state = _SiteThemes() if snapshot is None else _SiteThemes.from_snapshot(snapshot)

    def snapshot(self) -> tuple:
        """The counts and baselines as plain data (no configuration)."""
        return self.state.snapshot()

    def add(self, events: list[Feedback]) -> list[tuple[str, Any]]:
        st, w = self.state, self.window_ms
        for e in events:
            if not e.comment:
                st.max_ts = max(st.max_ts, e.ts_ms)
                continue
            start = window_bounds(w, e.ts_ms, self.days)[0]
            counts = st.windows.get(start)
            if counts is None:
                if st.windows and start < min(st.windows) and st.closed:
                    continue  # its window is closed: the comment stays searchable in feedback
                counts = st.windows[start] = Counter()
            counts[""] += 1
            # A comment that names no language is read in its site's.
            for theme in self.detector(e.comment, e.language or self.site.language):
                counts[theme] += 1
            st.max_ts = max(st.max_ts, e.ts_ms)
        return self._close(st.max_ts - self.lateness_ms)

    def flush(self) -> list[tuple[str, Any]]:
        return self._close(None)

    def _close(self, watermark: int | None) -> list[tuple[str, Any]]:
        st, out = self.state, []
        days = self.days
        for start in sorted(st.windows):
            end = window_bounds(self.window_ms, start, days)[1]
            if watermark is not None and end > watermark:
                break
            counts = st.windows.pop(start)
            comments = counts.pop("", 0)
            day = days.day_of(start)
            out += [("row", (self.site.id, self.site.region, self.window_ms // 1000, start, theme, n, comments, day))
                    for theme, n in sorted(counts.items())]
            out += self._surges(start, end, counts, comments)
        return out

    def _surges(self, start: int, end: int, counts: Counter, comments: int) -> list[tuple[str, Any]]:
        st, rule, out = self.state, self.rule, []
        if not comments:
            return out
        surging = set()
        for theme in self.detector.themes:
            n = counts.get(theme, 0)
            share = n / comments
            base = st.baseline.get(theme, 0.0)
            if (st.closed >= rule.min_windows and n >= rule.min_count
                    and share >= base + rule.min_jump and share >= rule.ratio * base):
                surging.add(theme)
                if theme not in st.surging:
                    out.append(("alert", self._alert(start, end, theme, n, comments, share, base)))
            st.baseline[theme] = share if st.closed == 0 else (1 - BASELINE_ALPHA) * base + BASELINE_ALPHA * share
        st.surging = surging
        st.closed += 1
        return out

    def _alert(self, start: int, end: int, theme: str, n: int, comments: int, share: float,
               base: float) -> dict[str, Any]:
        site = self.site
        text = texts("alerts", site.language)["theme"]["surge"].format(
            site=site.name or site.id, theme=theme, share=share, n=n, comments=comments, base=base)
        return new_alert(
            id=alert_id("theme_surge", site.id, theme, str(start)),
            kind="theme_surge", severity="medium", site_id=site.id, region=site.region, attribute=theme,
            triggers=["theme"],
            evidence={"theme": theme, "n": n, "comments": comments, "share": round(share, 4),
                      "baseline_share": round(base, 4), "window_start": iso_ms(start),
                      "window_length_s": self.window_ms // 1000},
            message=text, event_ms=end, owner=site.owner, team=site.team,
        )


class _ThemeLogic(StatefulBatchLogic):
    def __init__(self, windows: ThemeWindows) -> None:
        self.windows = windows

    def on_batch(self, values: list[list[Feedback]]):
        out = []
        for events in values:
            added, dead = batch_or_each("themes", self.windows.add, events, feedback_message)  # see operators.guard
            out += added
            out += [("dead", d) for d in dead]
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self):
        return self.windows.flush(), StatefulBatchLogic.RETAIN

    def snapshot(self) -> tuple:
        return self.windows.snapshot()


@operator
def comment_themes(
    step_id: str, up: KeyedStream[list[tuple[str, list[Feedback]]]], sites: dict[str, Site], themes: Themes,
    lexicons: Lexicons, lateness_ms: int, shards: int, zones: dict[str, str] | None = None,
) -> Stream[tuple[str, Any]]:
    """Per site (shard items of ``shards`` shards, each site's events: :class:`~operators.site_shards.SiteShards`):
    ``("row", comment_themes row)``, ``("alert", theme_surge)``, and ``("dead", DeadLetter)`` for an
    event the step failed on (:mod:`operators.guard`).

    ``themes`` is the settings section (window, surge rule); ``lexicons`` every theme's cues
    (``Settings.theme_lexicons()``); ``lateness_ms`` how long a window waits for late comments;
    ``zones`` each site's IANA zone (``Settings.site_zones()``): daily windows are its local days."""
    zones = zones or {}
    detector = ThemeDetector(lexicons)

    def build(site_id: str, snapshot):
        return _ThemeLogic(ThemeWindows(sites[site_id], detector, themes, lateness_ms, snapshot, zones.get(site_id, "")))

    return op.flat_map_batch("unkey", sharded_stateful_batch("themes", up, shards, build, notifies=False), site_values)
