"""Comment themes: what customers complain about, in French and English, with negations understood.

A theme is a complaint (an irritant), found by cue phrases from a lexicon (configurable: the
``[themes.lexicons]`` keys replace or add themes). A cue is *negated*, hence not counted, when a
negation word stands among the four words before it in the same clause ("pas trop long", "not too
long", "aucune attente", "no queue"); cues that carry their own negation ("pas aimable", "not
available") ignore the French "ne … pas" around them.

>>> detect = ThemeDetector()
>>> detect("Attente interminable à l'accueil.", "fr"), detect("Attente pas trop longue, merci.", "fr")
(['waiting_time'], [])
>>> detect("The wait was not too long.", "en"), detect("Over 30 minutes of waiting, unacceptable.", "en")
([], ['waiting_time'])
>>> detect("Le produit annoncé n'était pas disponible.", "fr")
['product_availability']

Per site, comments are counted per theme and event-time window (``comment_themes`` rows when a
window closes); a ``theme_surge`` alert fires when a theme's share of the window's comments jumps
above its recent baseline (an emerging irritant).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from boucle.config.locales import texts
from boucle.config.settings import Site, Themes
from boucle.config.times import iso_ms
from boucle.operators.alerts import alert_id, new_alert
from boucle.operators.decode import Feedback
from boucle.operators.guard import batch_or_each, feedback_message

__all__ = ["BASELINE_ALPHA", "DEFAULT_LEXICONS", "THEME_COLUMNS", "ThemeDetector", "ThemeWindows", "comment_themes"]

# theme: {language: [cue regexes]}; longer cues first within a theme does not matter (one alternation
# sorted by length is built per language).
DEFAULT_LEXICONS: dict[str, dict[str, list[str]]] = {
    "waiting_time": {
        "fr": [r"attente interminable", r"trop d'attente", r"minutes d'attente", r"trop long\w*", r"attendu\w*",
               r"attente (?:trop )?longue", r"file d'attente", r"personne pour nous servir", r"attendre"],
        "en": [r"waited", r"too long", r"long wait", r"minutes of waiting", r"waiting", r"queue was endless",
               r"endless queue", r"nobody came to help"],
    },
    "staff_friendliness": {
        "fr": [r"désagréable", r"pas aimable", r"impoli\w*", r"accueil froid", r"même pas dit bonjour", r"agressi\w+"],
        "en": [r"rude", r"unfriendly", r"unpleasant", r"dismissive", r"impolite"],
    },
    "staff_competence": {
        "fr": [r"ne connaissait pas", r"mauvais conseils?", r"n'a su répondre", r"incompétent\w*"],
        "en": [r"did not know", r"didn't know", r"wrong advice", r"could answer my question", r"wrong answer",
               r"incompetent"],
    },
    "cleanliness": {
        "fr": [r"sale", r"sales", r"dégoûtant\w*", r"propreté douteuse", r"crasseu\w+"],
        "en": [r"dirty", r"filthy", r"not clean", r"messy"],
    },
    "product_availability": {
        "fr": [r"rupture de stock", r"rupture", r"rien en rayon", r"introuvable", r"pas disponible", r"indisponible"],
        "en": [r"out of stock", r"empty shelves", r"not available", r"could not find the item", r"unavailable"],
    },
    "checkout_speed": {
        "fr": [r"une seule caisse", r"passage en caisse (?:beaucoup )?trop long", r"caisses? automatiques? en panne",
               r"queue (?:était )?énorme"],
        "en": [r"only one till", r"queue at (?:the )?checkout", r"checkout took (?:far )?too long",
               r"self-checkouts? (?:were |was )?broken"],
    },
    "price_perception": {
        "fr": [r"trop cher", r"pas (?:du tout )?compétiti\w+", r"prix ont (?:encore )?augmenté", r"hors de prix"],
        "en": [r"too expensive", r"expensive", r"not competitive", r"prices keep going up", r"overpriced"],
    },
    "store_layout": {
        "fr": [r"impossible de trouver", r"mal organisé\w*", r"signalétique (?:est )?confuse", r"compliqué de s'orienter"],
        "en": [r"poor signage", r"could not find anything", r"badly organi[sz]ed", r"layout is confusing",
               r"hard to find"],
    },
}

_NEGATORS = {
    "fr": {"pas", "ne", "n", "jamais", "aucun", "aucune", "sans", "ni", "guère"},
    "en": {"not", "no", "never", "without", "nor", "didn", "wasn", "isn", "weren", "aren", "don", "doesn",
           "hardly", "single"},
}
_NEGATION_BEARING = re.compile(r"^(?:pas|ne|n'|not|no|nobody|could not|did not|didn't)\b")
_CLAUSE_END = re.compile(r"[,.;:!?()]|\b(?:mais|but|et|and)\b")
_WORD = re.compile(r"\w+")
THEME_COLUMNS = ("site_id", "region", "window_length", "window_start", "theme", "n", "comments")


class ThemeDetector:
    """``detector(comment, language) -> sorted themes`` (complaints only, negations excluded)."""

    def __init__(self, lexicons: dict[str, dict[str, list[str]]] | None = None) -> None:
        merged = {**DEFAULT_LEXICONS, **(lexicons or {})}
        self.themes = sorted(merged)
        self._patterns: dict[str, tuple[re.Pattern[str], list[tuple[str, bool]]]] = {}
        for language in ("fr", "en"):
            cues = [(cue, theme) for theme, by_lang in merged.items() for cue in by_lang.get(language, [])]
            cues.sort(key=lambda c: -len(c[0]))
            alternation = "|".join(f"(?P<c{i}>{cue})" for i, (cue, _) in enumerate(cues))
            pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE) if cues else re.compile(r"(?!x)x")
            meta = [(theme, bool(_NEGATION_BEARING.match(cue))) for cue, theme in cues]
            self._patterns[language] = (pattern, meta)

    def __call__(self, comment: str, language: str = "") -> list[str]:
        if not comment:
            return []
        text = comment.replace("\u2019", "'")
        languages = [language] if language in self._patterns else ["fr", "en"]
        found: set[str] = set()
        for lang in languages:
            pattern, meta = self._patterns[lang]
            negators = _NEGATORS[lang]
            for match in pattern.finditer(text):
                theme, bearing = meta[int(match.lastgroup[1:])]
                if theme in found:
                    continue
                if not bearing and _negated(text[: match.start()], negators):
                    continue
                found.add(theme)
        return sorted(found)


def _negated(before: str, negators: set[str]) -> bool:
    clause = _CLAUSE_END.split(before.lower())[-1]
    words = _WORD.findall(clause)[-4:]
    return any(w in negators for w in words)


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
                 snapshot: tuple | None = None) -> None:
        self.site, self.detector, self.rule, self.lateness_ms = site, detector, themes, lateness_ms
        self.window_ms = int(themes.window.total_seconds() * 1000)
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
            start = e.ts_ms - e.ts_ms % w
            counts = st.windows.get(start)
            if counts is None:
                if st.windows and start < min(st.windows) and st.closed:
                    continue  # its window is closed: the comment stays searchable in feedback
                counts = st.windows[start] = Counter()
            counts[""] += 1
            for theme in self.detector(e.comment, e.language):
                counts[theme] += 1
            st.max_ts = max(st.max_ts, e.ts_ms)
        return self._close(st.max_ts - self.lateness_ms)

    def flush(self) -> list[tuple[str, Any]]:
        return self._close(None)

    def _close(self, watermark: int | None) -> list[tuple[str, Any]]:
        st, out = self.state, []
        for start in sorted(st.windows):
            if watermark is not None and start + self.window_ms > watermark:
                break
            counts = st.windows.pop(start)
            comments = counts.pop("", 0)
            out += [("row", (self.site.id, self.site.region, self.window_ms // 1000, start, theme, n, comments))
                    for theme, n in sorted(counts.items())]
            out += self._surges(start, counts, comments)
        return out

    def _surges(self, start: int, counts: Counter, comments: int) -> list[tuple[str, Any]]:
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
                    out.append(("alert", self._alert(start, theme, n, comments, share, base)))
            st.baseline[theme] = share if st.closed == 0 else (1 - BASELINE_ALPHA) * base + BASELINE_ALPHA * share
        st.surging = surging
        st.closed += 1
        return out

    def _alert(self, start: int, theme: str, n: int, comments: int, share: float, base: float) -> dict[str, Any]:
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
            message=text, event_ms=start + self.window_ms, owner=site.owner, team=site.team,
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
    step_id: str, up: KeyedStream[list[Feedback]], sites: dict[str, Site], themes: Themes, lateness_ms: int,
) -> Stream[tuple[str, Any]]:
    """Per site (keyed batches of its events): ``("row", comment_themes row)``, ``("alert", theme_surge)``,
    and ``("dead", DeadLetter)`` for an event the step failed on (:mod:`operators.guard`).

    ``themes`` is the settings section (lexicons, window, surge rule); ``lateness_ms`` how long a
    window waits for late comments."""
    detector = ThemeDetector(themes.lexicons)

    def build(site_id: str, snapshot):
        return _ThemeLogic(ThemeWindows(sites[site_id], detector, themes, lateness_ms, snapshot))

    # stateful_batch's builder gets the snapshot only; the key is bound per key via flat_map below.
    keyed = op.map("with_key", up, lambda kv: (kv[0], (kv[0], kv[1])))
    out = op.stateful_batch("themes", keyed, lambda snap: _KeyedThemeLogic(build, snap))
    return op.flat_map("unkey", out, lambda kv: [kv[1]])


class _KeyedThemeLogic(StatefulBatchLogic):
    """Builds the site's :class:`ThemeWindows` on the first batch (bytewax gives no key to builders)."""

    def __init__(self, build, snapshot) -> None:
        self.build, self.snap, self.inner = build, snapshot, None

    def on_batch(self, values):
        if self.inner is None:
            self.inner = self.build(values[0][0], self.snap)
        return self.inner.on_batch([events for _, events in values])

    def on_eof(self):
        return self.inner.on_eof() if self.inner else ([], StatefulBatchLogic.RETAIN)

    def snapshot(self):
        return self.inner.snapshot() if self.inner else self.snap
