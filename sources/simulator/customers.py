"""Per-site customer pools: repeat customers, consent to be contacted, contact details.

About 60% of customers consent to be contacted; some of those left an e-mail address and/or a
phone number (never a non-consenting one). Draws favour a few regulars, so repeats happen.

>>> import numpy as np
>>> pool = CustomerPool("store-0042", "GB", 500, np.random.default_rng(1))
>>> sum(pool.customer(k)["consent_contact"] for k in range(500)) / 500
0.61
>>> pool.new(0)["id"], pool.new(0)["consent_contact"]
('store-0042-n00000', True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["CONSENT_SHARE", "CustomerPool"]

CONSENT_SHARE = 0.6
_FIRST = ["camille", "lea", "hugo", "lucas", "emma", "jade", "louis", "chloe", "noah", "alice",
          "olivia", "jack", "amelia", "harry", "isla", "george"]
_LAST = ["martin", "bernard", "dubois", "thomas", "robert", "petit", "durand", "leroy", "smith",
         "jones", "taylor", "brown", "wilson", "evans", "peeters", "janssens"]
_PHONE = {"FR": "+33 6 {0:02d} {1:02d} {2:02d} {3:02d}", "BE": "+32 4{0:02d} {1:02d} {2:02d} {3:02d}",
          "GB": "+44 7700 9{0:02d}{1:02d}{2:1d}"}


class CustomerPool:
    def __init__(self, site_id: str, country: str, size: int, rng: np.random.Generator) -> None:
        self.site_id = site_id
        self._phone = _PHONE.get(country.upper(), _PHONE["FR"])
        self._domain = "example.co.uk" if country.upper() == "GB" else "example.com"
        size = max(int(size), 1)
        consent = rng.random(size) < CONSENT_SHARE
        email = consent & (rng.random(size) < 0.7)
        phone = consent & (rng.random(size) < 0.5)
        names = rng.integers(0, len(_FIRST) * len(_LAST), size)
        digits = rng.integers(0, 100, (size, 4))
        self.size = size
        self._draws = (consent.tolist(), email.tolist(), phone.tolist(), names.tolist(), digits.tolist())
        self._built: dict[int, dict] = {}

    def customer(self, k: int) -> dict:
        """Customer ``k`` of the pool (built on first use; the same object afterwards)."""
        built = self._built.get(k)
        if built is None:
            consent, email, phone, names, digits = self._draws
            built = self._built[k] = self._customer(
                f"{self.site_id}-c{k:05d}", consent[k], email[k], phone[k], names[k], digits[k])
        return built

    def customers_for(self, indices: np.ndarray) -> list[dict]:
        """The customers at ``indices``, as a list."""
        built = self._built
        for k in np.unique(indices).tolist():
            if k not in built:
                self.customer(k)
        return [built[k] for k in indices.tolist()]

    def _customer(self, cid: str, consent: bool, email: bool, phone: bool, name: int, digits) -> dict:
        customer: dict = {"id": cid, "consent_contact": consent}
        if email:
            first, last = _FIRST[name % len(_FIRST)], _LAST[name // len(_FIRST)]
            customer["email"] = f"{first}.{last}{digits[0]}@{self._domain}"
        if phone:
            customer["phone"] = self._phone.format(digits[0], digits[1], digits[2], digits[3] % 10)
        return customer

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Indices of ``n`` respondents; low indices are regulars who answer more often."""
        return (self.size * rng.random(n) ** 1.8).astype(np.int64)

    def new(self, k: int) -> dict:
        """A first-time customer who consents and left both contact details (bursts use these)."""
        return self._customer(f"{self.site_id}-n{k:05d}", True, True, True, k * 7, [k % 100, 12, 34, 5])
