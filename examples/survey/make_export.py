"""Write ``export.csv``: a small survey export in the ``generic`` layout for the registry of ``examples/registry``.

Six months (March-August 2026) of a thin, CSAT-only network: 10 sites answering from a handful of
times to about a hundred, an overall rating (``overall``, 1-5), three attributes answered most of the
time (0 or N/A when not rated), the NPS column left empty, a comment on about half the responses in
the site's language, and two rows an import must refuse (an unknown store code, a date that does not
exist). Deterministic: ``python examples/survey/make_export.py`` rewrites the same file.
"""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
SITES_CSV = HERE.parent / "registry" / "sites.csv"
COLUMNS = ["date", "store", "channel", "stage", "recommend", "overall", "waiting", "staff", "cleanliness",
           "comment", "language", "email", "phone", "may_contact"]
START, DAYS = date(2026, 3, 2), 183
ROWS = 300
ATTRIBUTES = ("waiting", "staff", "cleanliness")

# (complaint, praise) per attribute and language; the complaints carry cues of the example catalogue.
PHRASES = {
    "fr": {"waiting": ("Attente interminable en caisse.", "Servi tout de suite."),
           "staff": ("Vendeur désagréable.", "Personnel très aimable."),
           "cleanliness": ("Magasin sale, rayons encombrés.", "Magasin impeccable.")},
    "en": {"waiting": ("Waited far too long at the till.", "Served straight away."),
           "staff": ("The staff member was rude.", "Lovely, helpful staff."),
           "cleanliness": ("The store was dirty.", "Spotless store.")},
}


def sites() -> list[tuple[str, str]]:
    with SITES_CSV.open(encoding="utf-8", newline="") as f:
        return [(row["Store code"], row["Language"]) for row in csv.DictReader(f)]


def rating(rng: random.Random, level: float) -> int:
    return max(1, min(5, round(rng.gauss(level, 1.1))))


def row(rng: random.Random, site: str, language: str, day: date, busiest: str) -> list[str]:
    # The busiest site's waiting time falls from July on: the one irritant of the example.
    late_wait = site == busiest and day >= date(2026, 7, 1)
    overall = rating(rng, 3.9 - (0.8 if late_wait else 0.0))
    answers = {}
    for name in ATTRIBUTES:
        level = overall - (1.5 if name == "waiting" and late_wait else 0.0)
        answers[name] = str(rating(rng, level)) if rng.random() < 0.85 else rng.choice(["0", "N/A"])
    comment = ""
    if rng.random() < 0.5:
        rated = {k: int(v) for k, v in answers.items() if v not in ("0", "N/A")}
        if rated:
            worst, best = min(rated, key=rated.get), max(rated, key=rated.get)
            complaint, _ = PHRASES[language][worst]
            _, praise = PHRASES[language][best]
            comment = complaint if rated[worst] <= 2 else praise
    consent = rng.random() < 0.4
    email = f"customer{rng.randrange(10_000):04d}@example.org" if consent else ""
    return [day.strftime("%d/%m/%Y"), site, rng.choice(["store", "store", "web", "app"]), "purchase", "",
            str(overall), *answers.values(), comment, language, email, "", "yes" if consent else "no"]


def rows(rng: random.Random) -> list[list[str]]:
    network = sites()
    # Heavy-tailed volumes: a few busy sites, most of them thin.
    weights = [rng.lognormvariate(0.0, 1.0) for _ in network]
    busiest = network[weights.index(max(weights))][0]
    out = []
    for _ in range(ROWS):
        site, language = rng.choices(network, weights)[0]
        out.append(row(rng, site, language, START + timedelta(days=rng.randrange(DAYS)), busiest))
    out.sort(key=lambda r: (r[0][6:], r[0][3:5], r[0][:2]))
    bad = [list(out[10]), list(out[20])]
    bad[0][1] = "lyon-1"  # a store code the registry does not know: unknown_site
    bad[1][0] = "31/04/2026"  # no such day: bad_timestamp
    return out + bad


def main() -> None:
    path = HERE / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows(random.Random(2026)))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
