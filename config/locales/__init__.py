"""Every word Boucle shows people, in one place: ``<language>/<section>.toml`` under this package.

A section is a flat or nested TOML table of texts (``alerts``, ``notify``, ``report``, ...); a
text may hold ``str.format`` fields. Any language code is accepted (``de``, ``de-CH``, ``sv``):
it is looked up as given, then by its primary subtag, and every key missing there falls back to
English, so a language is added by adding its folder, one section file at a time. Numbers and
dates are formatted by Babel in the language's conventions.

>>> texts("report", "de-CH")["_language"], texts("report", "sv")["_language"]
('de', 'en')
>>> format_number(1234.5, "fr", 1), format_number(1234.5, "en", 1), format_number(0.25, "de", 2)
('1\\u202f234,5', '1,234.5', '0,25')
>>> from datetime import date
>>> format_date(date(2026, 3, 1), "de"), format_date(date(2026, 3, 1), "en", "d MMM")
('01.03.2026', '1 Mar')
>>> sorted(["Occitanie", "Île-de-France", "Bretagne"], key=collation_key)
['Bretagne', 'Île-de-France', 'Occitanie']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any

import tomllib
from babel import Locale, UnknownLocaleError
from babel.dates import format_date as _babel_date
from babel.numbers import format_decimal

__all__ = ["FALLBACK", "LANGUAGE_CODE", "SHIPPED", "collation_key", "format_date", "format_number",
           "is_language_code", "label_in", "language_of", "language_tags", "texts"]

FALLBACK = "en"
# A BCP 47 language tag as sites and recipients declare it (primary subtag, optional region/script).
LANGUAGE_CODE = r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$"
_LANGUAGE_RE = re.compile(LANGUAGE_CODE)


def _shipped() -> tuple[str, ...]:
    root = resources.files(__name__)
    return tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")))


SHIPPED = _shipped()  # the languages with a folder here (English is complete; others fall back per key)


def language_of(code: str) -> str:
    """The shipped language that serves ``code``: itself, its primary subtag, else English.

    >>> language_of("nl"), language_of("NL-be"), language_of("pt_BR"), language_of("")
    ('nl', 'nl', 'en', 'en')
    """
    code = _normal(code)
    if code in SHIPPED:
        return code
    primary = _primary(code)
    return primary if primary in SHIPPED else FALLBACK


def language_tags(code: str) -> tuple[str, ...]:
    """The tags that may serve ``code``, most specific first, normalised (lower case, ``-``).

    >>> language_tags("de_CH"), language_tags("fr"), language_tags("")
    (('de-ch', 'de'), ('fr',), ())
    """
    code = _normal(code)
    return tuple(dict.fromkeys(tag for tag in (code, _primary(code)) if tag))


def _normal(code: str) -> str:
    return (code or "").strip().replace("_", "-").lower()


def _primary(code: str) -> str:
    return _normal(code).split("-", 1)[0]


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


@lru_cache(maxsize=None)
def _section(section: str, language: str) -> dict[str, Any]:
    path = resources.files(__name__) / language / f"{section}.toml"
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@lru_cache(maxsize=None)
def _texts(section: str, language: str) -> Mapping[str, Any]:
    merged = _merge(_section(section, FALLBACK), _section(section, language)) if language != FALLBACK \
        else dict(_section(section, FALLBACK))
    merged["_language"] = language
    return merged


def texts(section: str, language: str) -> Mapping[str, Any]:
    """The texts of ``section`` in the language serving ``language``, English for any key it lacks;
    ``_language`` names the language served. Cached: call it as often as needed."""
    return _texts(section, language_of(language))


@lru_cache(maxsize=64)
def _locale(language: str) -> Locale:
    try:
        return Locale.parse((language or FALLBACK).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse(language.replace("-", "_").split("_")[0])
        except (UnknownLocaleError, ValueError):
            return Locale.parse(FALLBACK)


def format_number(value: float, language: str, decimals: int | None = None, *, grouping: bool = True) -> str:
    """``value`` in the conventions of ``language`` (any code Babel knows, else English), with
    ``decimals`` digits after the separator (``None``: as few as needed, at most 3) and, unless
    ``grouping`` is off, thousands grouped."""
    if decimals is None:
        return format_decimal(value, locale=_locale(language), group_separator=grouping)
    pattern = ("#,##0" if grouping else "0") + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=_locale(language))


def format_date(day: date, language: str, pattern: str = "short") -> str:
    """A date as people of ``language`` read it (``short``/``medium``/``long`` or a CLDR pattern)."""
    return _babel_date(day, format=_date_format(pattern, language), locale=_locale(language))


def _date_format(pattern: str, language: str) -> str:
    # Babel's "short" date for English is 3/1/26; a report wants the 4-digit year everywhere.
    if pattern == "short":
        return _locale(language).date_formats["medium"].pattern if language_of(language) == "en" \
            else _locale(language).date_formats["short"].pattern.replace("yy", "yyyy").replace("yyyyyyyy", "yyyy")
    return pattern


def label_in(labels: Mapping[str, str], language: str) -> str:
    """The text of ``labels`` (``{language tag: text}``) for ``language``: its own tag, its primary
    subtag, else English ("" when there is none).

    >>> label_in({"en": "Waiting time", "de": "Wartezeit"}, "de-AT"), label_in({"en": "Waiting time"}, "sv")
    ('Wartezeit', 'Waiting time')
    """
    return labels.get(language) or labels.get(_primary(language)) or labels.get(FALLBACK, "")


def is_language_code(code: str) -> bool:
    """Whether ``code`` has the shape of a language tag (``fr``, ``de-CH``, ``pt_BR``).

    >>> is_language_code("de-CH"), is_language_code("german"), is_language_code("")
    (True, False, False)
    """
    return bool(_LANGUAGE_RE.match(code or ""))


def collation_key(text: str) -> tuple:
    """A sort key that orders names as people read them: accents and case folded (``Île`` with the
    I's), numbers by value (``Venue 2`` before ``Venue 10``); the text itself breaks ties.

    Babel has no collation and the C library's depends on installed system locales, so the key folds
    accents by Unicode decomposition: right for the Latin-script languages shipped, not for a
    language that sorts accented letters apart (Swedish å after z).

    >>> sorted(["Venue 10", "venue 2", "Évry", "Eaubonne"], key=collation_key)
    ['Eaubonne', 'Évry', 'venue 2', 'Venue 10']
    """
    folded = "".join(c for c in unicodedata.normalize("NFKD", (text or "").casefold()) if not unicodedata.combining(c))
    parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", folded) if part)
    return parts, text or ""
