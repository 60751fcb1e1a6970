"""Mask personal data in free text before it is stored or shown outside a consented hot alert.

What is masked, and by what (the placeholders keep the sentence readable):

- ``[email]``: addresses (``jean.dupont@mail.fr``) and obfuscated ones (``jean dot dupont at gmail
  dot com``, ``jean(at)gmail.com``, ``jean [at] gmail [dot] com``, ``jean arobase gmail point fr``);
- ``[phone]``: numbers that :mod:`phonenumbers` reads as a phone number in one of the region hints
  (the site's country, then FR, GB, US, DE, IT, ES), written with spaces, dots, dashes, slashes or
  parentheses, national (``06/12/34/56/78``) or international (``+33 (0)6…``, ``0033 6…``);
- ``[card]``: 13-19 digit card numbers (Luhn check, :mod:`stdnum.luhn`, or the 4-4-4-4 layout);
- ``[iban]``: IBANs (checksum by :mod:`stdnum.iban`), grouped or not;
- ``[nir]``: French social-security numbers (15 characters with their key, :mod:`stdnum.fr.nir`,
  Corsican ``2A``/``2B`` included, or 13 without the key when written in the NIR's groups);
- ``[cvv]``, ``[expiry]``: the digits after ``cvv``, ``cvc``, ``cryptogramme``, ``security code``…
  and the ``MM/YY`` after ``exp``, ``expiry``, ``valid thru``, ``date d'expiration``… (the word stays).

Dates (``12-17-2012``, ``2013-06-02``, ``02/06/2013``, ``17.12.2012``), times, prices, quantities and
references such as order numbers stay: a national number that does not start with its trunk ``0``
is a phone only when valid *and* written in phone-like groups.

>>> mask_pii("Rappelez-moi au 06 12 34 56 78 ou jean.dupont@mail.fr, merci")
'Rappelez-moi au [phone] ou [email], merci'
>>> mask_pii("Card 4970 1012 3456 7890 was charged twice, call +44 20 7946 0958")
'Card [card] was charged twice, call [phone]'
>>> mask_pii("Attente de 20 minutes pour 2 articles à 12,50 €")
'Attente de 20 minutes pour 2 articles à 12,50 €'
>>> mask_pii("vol du 02/06/2013, écrivez à jean dot dupont at gmail dot com ou au 06/12/34/56/78")
'vol du 02/06/2013, écrivez à [email] ou au [phone]'
>>> mask_pii("cvv 123, exp 09/27, IBAN FR76 3000 6000 0112 3456 7890 189")
'cvv [cvv], exp [expiry], IBAN [iban]'
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException
from stdnum import iban as _iban
from stdnum import luhn
from stdnum.fr import nir as _nir

__all__ = ["DEFAULT_REGIONS", "PLACEHOLDERS", "mask_pii", "regions_for"]

# fr, en (GB, US), de, it, es: the languages the comments are expected in.
DEFAULT_REGIONS = ("FR", "GB", "US", "DE", "IT", "ES")
PLACEHOLDERS = ("[email]", "[phone]", "[card]", "[iban]", "[nir]", "[cvv]", "[expiry]")

# Cheap pre-checks: a comment with neither two digits in a row nor '@' nor a word "at"/"arobase"
# holds nothing to mask and costs one regex search and a few substring tests.
_HAS_DIGITS_OR_AT = re.compile(r"\d\d|@")
# How an "at" is written between the two parts of an obfuscated address (looked up with str.find).
_AT_MARKERS = ((" at ", 1, 2), ("(at)", 1, 2), ("[at]", 1, 2), ("{at}", 1, 2), ("<at>", 1, 2), ("arobase", 0, 7))

# Every pattern is anchored on something rare (a digit, an '@', the word "at") and bounded, so a
# long comment costs one scan and a 1 MB comment without spaces stays linear.

# ---- e-mail addresses --------------------------------------------------------------------------
_EMAIL_DOMAIN = re.compile(r"[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_LOCAL_CHARS = frozenset("._+-%")
_LABEL = r"[\w%+-]{1,64}"
_DOT_WORD = r"(?:\s*[\[\(\{<]\s*(?:dot|point|punto|punkt)\s*[\]\)\}>]\s*|\s+(?:dot|point|punto|punkt)\s+)"
_TLD = (r"(?:com|net|org|info|biz|io|eu|fr|be|ch|lu|uk|de|at|it|es|pt|nl|ie|pl|se|dk|no|fi|gr|ca|us|me|co)"
        r"(?![\w-])")
_OBFUSCATED_DOMAIN = re.compile(rf"(?i){_LABEL}(?:(?:\.|{_DOT_WORD}){_LABEL}){{0,4}}(?:\.|{_DOT_WORD}){_TLD}")
_OBFUSCATED_LOCAL = re.compile(rf"(?i)(?<![\w.%+-]){_LABEL}(?:(?:\.|{_DOT_WORD}){_LABEL}){{0,4}}\Z")
_OPEN, _CLOSE = "[({<", "])}>"

# ---- numbers -----------------------------------------------------------------------------------
# A token: digits with the separators people write numbers with ("2A"/"2B": Corsica in a NIR).
_TOKEN = re.compile(r"[\d+(](?:[ ./()+-]*(?:\d|(?<=2)[ABab]))+")
_DETAIL = re.compile(
    r"(?<!\w)(?P<nir>[1-478]\s?\d\d\s?(?:0[1-9]|1[0-2]|[2-9]\d)\s?(?:\d\d|2[ABab])\s?\d{3}\s?\d{3}(?:\s?\d\d)?)(?!\w)"
    r"|(?<!\d)(?<!\d[/.-])(?P<date>\d{4}(?P<s1>[/.-])\d{1,2}(?P=s1)\d{1,2}|\d{1,2}(?P<s2>[/.-])\d{1,2}(?P=s2)(?:\d{4}|\d\d))"
    r"(?![/.-]?\d)"
    r"|(?<![\d.:/-])(?P<time>(?:[01]?\d|2[0-3])[.:h][0-5]\d(?:\s?-\s?(?:[01]?\d|2[0-3])[.:h][0-5]\d)?)(?![/.:-]?\d)"
    r"|(?<!\w)(?P<number>(?:\(?\+\s?)?\(?\d(?:[ ./()-]{0,3}\d){7,18})(?!\w)"
)
_NUMBER = re.compile(r"(?<!\w)(?P<number>(?:\(?\+\s?)?\(?\d(?:[ ./()-]{0,3}\d){7,18})(?!\w)")
_DATE = re.compile(r"(?<!\d)(?<!\d[/.-])(?:\d{4}([/.-])\d{1,2}\1\d{1,2}|\d{1,2}([/.-])\d{1,2}\2(?:\d{4}|\d\d))(?![/.-]?\d)")
_IBAN = re.compile(r"(?i)[a-z]{2}\d\d(?:[ ]?[a-z0-9]{4}){2,7}(?:[ ]?[a-z0-9]{1,3})?(?![a-z0-9])")
_PRICE_AFTER = re.compile(r"\s?(?:€|\$|£|%|(?i:eur(?:os?)?|usd|gbp|chf|dollars?|pounds?|livres?)\b)")
_PRICE_BEFORE = re.compile(r"(?:€|\$|£|(?i:eur|usd|gbp|chf))\s?\Z")
_CARD_LAYOUTS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 3)}
_NIR_LAYOUT = (1, 2, 2, 2, 3, 3)

# ---- card security codes and expiry dates: a keyword, then the digits ---------------------------
_CARD_WORDS = ("cvv", "cvc", "cvn", "crypto", "curit", "exp", "valid", "valable", "val.", "verification")
_CVV_BEFORE = re.compile(
    r"(?i)(?<![a-z])(?:cvv|cvc|cvn|cryptogramme(?:\s+visuel)?|crypto|code\s+de\s+s[ée]curit[ée]|security\s+code"
    r"|card\s+verification\s+(?:code|value))\s*(?:[:=#]\s*|is\s+|est\s+)?\Z"
)
_EXPIRY_SHAPE = re.compile(r"(?:0?[1-9]|1[0-2])\s?[/.-]\s?(?:20)?\d\d\Z")
_EXPIRY_BEFORE = re.compile(
    r"(?i)(?<![a-z])(?:exp(?:iry|iration|ires?|\.)?(?:\s+date)?|date\s+d'expiration|expire(?:\s+(?:le|fin|en))?"
    r"|valid(?:e)?\s+(?:thru|through|until)|valable\s+jusqu'(?:au|à|a)|val\.)\s*(?:[:=]\s*|on\s+|le\s+)?\Z"
)


def regions_for(country: str | None) -> tuple[str, ...]:
    """The phone region hints of a site: its country (ISO 3166 alpha-2) first, then the defaults.

    >>> regions_for("be"), regions_for("FR") == DEFAULT_REGIONS, regions_for("") == DEFAULT_REGIONS
    (('BE', 'FR', 'GB', 'US', 'DE', 'IT', 'ES'), True, True)
    """
    code = (country or "").strip().upper()
    code = "GB" if code == "UK" else code
    if code not in phonenumbers.SUPPORTED_REGIONS:
        return DEFAULT_REGIONS
    return (code, *(r for r in DEFAULT_REGIONS if r != code))


def mask_pii(text: str, regions: tuple[str, ...] = DEFAULT_REGIONS) -> str:
    """``text`` with e-mail addresses, phone, card, IBAN and NIR numbers, CVV and expiry dates
    replaced by placeholders (see the module's docstring); ``regions``: phone region hints."""
    if not text:
        return text
    numbers = _HAS_DIGITS_OR_AT.search(text) is not None
    at_words = _at_words(text)
    if not numbers and not at_words:
        return text
    if "@" in text:
        text = _mask_emails(text)
        numbers = _HAS_DIGITS_OR_AT.search(text) is not None
    if at_words:
        text = _mask_obfuscated_emails(text)
    if numbers:
        text = _mask_tokens(text, regions)
    return text


def _splice(text: str, spans: list[tuple[int, int, str]]) -> str:
    if not spans:
        return text
    out, last = [], 0
    for start, end, placeholder in spans:
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    return "".join(out)


def _mask_emails(text: str) -> str:
    """Plain addresses, found from their '@' (a pattern starting at every word would cost more)."""
    spans: list[tuple[int, int, str]] = []
    last = 0
    at = text.find("@")
    while at != -1:
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        start = at
        while start > last and at - start < 128 and (text[start - 1].isalnum() or text[start - 1] in _LOCAL_CHARS):
            start -= 1
        if domain is not None and start < at:
            spans.append((start, domain.end(), "[email]"))
            last = domain.end()
        at = text.find("@", max(at + 1, last))
    return _splice(text, spans)


def _mask_obfuscated_emails(text: str) -> str:
    """``jean dot dupont at gmail dot com``, ``jean(at)gmail.com``, ``jean @ gmail.com``: found from the "at"."""
    low = text.lower()
    cores = sorted(
        {(i + offset, i + offset + length) for marker, offset, length in _AT_MARKERS for i in _find_all(low, marker)}
        | {(i, i + 1) for i in _find_all(text, "@")}
    )
    spans: list[tuple[int, int, str]] = []
    last = 0
    for core_start, core_end in cores:
        if core_start < last:
            continue
        left, right = core_start, core_end
        while left > last and text[left - 1].isspace():
            left -= 1
        opened = left > last and text[left - 1] in _OPEN
        if opened:
            left -= 1
            while left > last and text[left - 1].isspace():
                left -= 1
        while right < len(text) and text[right].isspace():
            right += 1
        closed = right < len(text) and text[right] in _CLOSE
        if closed:
            right += 1
            while right < len(text) and text[right].isspace():
                right += 1
        spaced = left < core_start and right > core_end
        if text[core_start] != "@" and not (opened and closed) and not spaced:
            continue  # "arobase" glued to a word
        domain = _OBFUSCATED_DOMAIN.match(text, right)
        if domain is None:
            continue
        local = _OBFUSCATED_LOCAL.search(text, max(last, left - 200), left)
        if local is None:
            continue
        spans.append((local.start(), domain.end(), "[email]"))
        last = domain.end()
    return _splice(text, spans)


def _find_all(text: str, needle: str):
    i = text.find(needle)
    while i != -1:
        yield i
        i = text.find(needle, i + 1)


def _at_words(text: str) -> bool:
    """Whether ``text`` may hold an obfuscated address (substring tests: far cheaper than a pattern)."""
    if "@" in text:
        return True
    low = text.lower()
    return " at " in low or "(at)" in low or "[at]" in low or "{at}" in low or "<at>" in low or "arobase" in low


def _mask_tokens(text: str, regions: tuple[str, ...]) -> str:
    spans: list[tuple[int, int, str]] = []
    last = 0
    card_words: bool | None = None  # whether the text names a CVV or an expiry date (looked up once, lazily)
    for token in _TOKEN.finditer(text):
        start, end = token.span()
        if start < last:
            continue
        value = token[0]
        before = text[start - 1] if start else ""
        if before.isalnum():  # the tail of a word ("A12345678", "cvv2"), unless an IBAN's country code
            if start >= 2 and text[start - 2].isalpha() and (start < 3 or not text[start - 3].isalnum()):
                iban = _iban_at(text, start - 2)
                if iban is not None:
                    spans.append((start - 2, iban, "[iban]"))
                    last = iban
            continue
        if len(value) < 8:  # too short for any number of the list: maybe a CVV or an expiry date
            if len(value) < 3:
                continue
            cvv = len(value) <= 4 and value.isdigit()
            expiry = not cvv and _EXPIRY_SHAPE.match(value) is not None
            if cvv or expiry:
                if card_words is None:
                    low = text.lower()
                    card_words = any(word in low for word in _CARD_WORDS)
                if card_words:
                    window = max(0, start - 40)
                    if cvv and _CVV_BEFORE.search(text, window, start):
                        spans.append((start, end, "[cvv]"))
                    elif expiry and _EXPIRY_BEFORE.search(text, window, start):
                        spans.append((start, end, "[expiry]"))
            continue
        if before == "-" and start >= 2 and text[start - 2].isalnum():
            continue  # the tail of a reference ("uuid-426614174000", "CMD-2024-000123")
        if end < len(text) and text[end].isalpha():
            continue
        if _PRICE_AFTER.match(text, end) or _PRICE_BEFORE.search(text, max(0, start - 4), start):
            continue
        masked = _DETAIL.sub(lambda m: _replace(m, regions), value)
        if masked != value:
            spans.append((start, end, masked))
    return _splice(text, spans)


def _iban_at(text: str, start: int) -> int | None:
    """The end of a valid IBAN starting at ``start``, or None (trailing groups dropped one by one:
    the pattern may take a following word of four letters)."""
    match = _IBAN.match(text, start)
    if match is None:
        return None
    candidate = match[0]
    for _ in range(4):
        if _iban.is_valid(candidate):
            return start + len(candidate)
        cut = max(candidate.rfind(" "), len(candidate) - 4)
        candidate = candidate[:cut].rstrip()
        if len(candidate) < 15:
            break
    return None


def _replace(match: re.Match[str], regions: tuple[str, ...]) -> str:
    kind = match.lastgroup
    text = match[0]
    if kind == "nir":
        return "[nir]" if _is_nir(text) else _mask_numbers(text, regions)
    if kind == "date":
        return text if _is_date(text) else _mask_numbers(text, regions)
    if kind == "time":  # "08.30-12.00": opening hours, not a phone number
        return text
    return _number(text, regions)


def _mask_numbers(text: str, regions: tuple[str, ...]) -> str:
    return _NUMBER.sub(lambda m: _number(m[0], regions), text)


def _number(text: str, regions: tuple[str, ...]) -> str:
    date = _DATE.search(text)
    if date is not None and _is_date(date[0]):  # "2 02/06/2013": the date splits the run
        return _mask_numbers(text[: date.start()], regions) + date[0] + _mask_numbers(text[date.end():], regions)
    return _classify(text, regions) or text


@lru_cache(maxsize=4096)
def _classify(text: str, regions: tuple[str, ...]) -> str | None:
    digits = re.sub(r"\D", "", text)
    groups = tuple(len(g) for g in re.findall(r"\d+", text))
    international = text.startswith(("+", "(+")) or (digits.startswith("00") and not text.startswith("("))
    if not international and 13 <= len(digits) <= 19:
        if groups in _CARD_LAYOUTS or (digits[0] in "23456" and luhn.is_valid(digits)):
            return "[card]"
    if len(digits) <= 15 and _is_phone(text, digits, groups, international, regions):
        return "[phone]"
    return None


def _is_phone(text: str, digits: str, groups: tuple[int, ...], international: bool, regions: tuple[str, ...]) -> bool:
    if international:
        number = _parse("+" + digits[2:] if digits.startswith("00") else text, None)
        return number is not None and phonenumbers.is_possible_number(number)
    phone_like_groups = len(groups) >= 2 and all(2 <= g <= 4 for g in groups[1:]) and groups[0] <= 4
    for region in regions:
        trunk = _trunk_prefix(region)
        if trunk == "0":
            # Written nationally, a number of these regions starts with 0 (00 is the international prefix).
            if digits[0] != "0" or digits[1] == "0":
                continue
            number = _parse(text, region)
            if number is not None and (phonenumbers.is_valid_number(number)
                                       or (len(digits) >= 10 and phonenumbers.is_possible_number(number))):
                return True
        elif phone_like_groups:  # no trunk 0 (IT, ES, US): a bare run of digits is a reference
            number = _parse(text, region)
            if number is not None and phonenumbers.is_valid_number(number):
                return True
    return False


@lru_cache(maxsize=None)
def _trunk_prefix(region: str) -> str | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return metadata.national_prefix if metadata is not None else None


def _parse(text: str, region: str | None):
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException:
        return None


def _is_nir(text: str) -> bool:
    compact = re.sub(r"\s", "", text).upper()
    groups = tuple(len(g) for g in text.split())
    if len(compact) == 15:
        return _nir.is_valid(compact) or groups == (*_NIR_LAYOUT, 2)
    # Without its key: only in the NIR's own layout (a bare 13-digit run may be a barcode).
    return len(compact) == 13 and compact[0] in "12" and groups == _NIR_LAYOUT


def _is_date(text: str) -> bool:
    parts = [int(p) for p in re.split(r"[/.-]", text)]
    if len(parts) != 3:
        return False
    if parts[0] > 999:  # year first
        return 1 <= parts[1] <= 12 and 1 <= parts[2] <= 31
    a, b = parts[0], parts[1]
    return (1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31)
