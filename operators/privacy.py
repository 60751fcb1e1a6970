"""Mask personal data in free text before it is stored or shown outside a consented hot alert.

>>> mask_pii("Rappelez-moi au 06 12 34 56 78 ou jean.dupont@mail.fr, merci")
'Rappelez-moi au [phone] ou [email], merci'
>>> mask_pii("Card 4970 1012 3456 7890 was charged twice, call +44 20 7946 0958")
'Card [card] was charged twice, call [phone]'
>>> mask_pii("Attente de 20 minutes pour 2 articles à 12,50 €")
'Attente de 20 minutes pour 2 articles à 12,50 €'
"""

from __future__ import annotations

import re

__all__ = ["mask_pii"]

_EMAIL = r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
# A run of digits with the usual separators; what it is depends on how many digits it holds.
_NUMBER = r"(?P<number>\+?\(?\d[\d\s().-]{6,}\d)"
_PII = re.compile(f"{_EMAIL}|{_NUMBER}")
_HAS_CANDIDATE = re.compile(r"@|\d{2}")


def _replace(match: re.Match[str]) -> str:
    if match["email"]:
        return "[email]"
    text = match["number"]
    digits = sum(c.isdigit() for c in text)
    if 13 <= digits <= 19 and "+" not in text:
        return "[card]"
    if 8 <= digits <= 15:
        return "[phone]"
    return text


def mask_pii(text: str) -> str:
    """Replace e-mail addresses, phone numbers and card-like numbers by placeholders."""
    if not text or not _HAS_CANDIDATE.search(text):
        return text
    return _PII.sub(_replace, text)
