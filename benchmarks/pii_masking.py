"""Microseconds per comment of the PII masking (``boucle.operators.privacy.mask_pii``).

Three sets of comments: the simulator's (short, French and English, 2 % leak an e-mail or a phone),
review-like ones (~1,000 characters, with numbers: dates, prices, times, order numbers, no PII),
and comments that all hold PII. Each set is masked ``--repeat`` times; the best run is reported.

    python benchmarks/pii_masking.py
"""

from __future__ import annotations

import argparse
import random
import time

from boucle.operators.privacy import mask_pii
from boucle.sources.simulator.text import CommentComposer

_ATTRIBUTES = ["waiting_time", "staff_friendliness", "staff_competence", "cleanliness", "product_availability",
               "checkout_speed", "price_perception", "store_layout"]

_REVIEW_PARTS = [
    "We flew on 12-17-2012 from Paris and came back on 2013-06-02; the lounge was crowded.",
    "Boarding started at 10:30 instead of 09h45, and the gate changed twice.",
    "I paid 1 299,99 € for two seats (order 4500123456) and another 45 € for luggage.",
    "The room on the 3rd floor was clean, breakfast from 7.00 to 10.30 was excellent value.",
    "Staff at the desk were friendly, though check-in took 40 minutes for 2 people.",
    "Nous avons réservé le 17.12.2012 pour 3 nuits, chambre 214, et tout était parfait.",
    "Le vol AF 1234 avait 2 h de retard, on nous a offert un bon de 15 € seulement.",
    "Overall a decent stay, I would come back, but the wifi dropped every 10 minutes.",
]
_PII_COMMENTS = [
    "Rappelez-moi au 06/12/34/56/78 svp, commande 4500123456.",
    "write to jean dot dupont at gmail dot com about my refund",
    "IBAN FR76 3000 6000 0112 3456 7890 189 for the refund of 45 €",
    "Card 4111 1111 1111 1111 exp 09/27 cvv 123 was charged twice",
    "mon numéro de sécu 2 95 10 99 126 111 93, pourquoi me le demander ?",
    "Call me on +44 20 7946 0958 or jane.smith@example.co.uk",
]


def comment_sets(n: int, seed: int = 1) -> dict[str, list[str]]:
    rng = random.Random(seed)
    composer = CommentComposer(_ATTRIBUTES)
    simulated = [
        composer.compose(rng.choice(["fr", "en"]), rng.randrange(8), rng.randrange(8), rng.randrange(3),
                         int(rng.random() < 0.3), int(rng.random() < 0.02), rng.randrange(1 << 16))
        for _ in range(n)
    ]
    reviews = [" ".join(rng.sample(_REVIEW_PARTS, len(_REVIEW_PARTS)) * 2)[:1000] for _ in range(max(1, n // 10))]
    pii = [rng.choice(_PII_COMMENTS) for _ in range(max(1, n // 10))]
    return {"simulator comments": simulated, "review-like, ~1,000 chars": reviews, "all with PII": pii}


def measure(comments: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for c in comments:
            mask_pii(c)
        best = min(best, time.perf_counter() - start)
    return best / len(comments) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=20_000, help="simulator comments (the others: a tenth)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per set; the best is reported")
    args = parser.parse_args()
    for name, comments in comment_sets(args.comments).items():
        mean_len = sum(map(len, comments)) / len(comments)
        print(f"{name:<28} {len(comments):>7,} comments, {mean_len:>6.0f} chars: "
              f"{measure(comments, args.repeat):7.2f} µs per comment")


if __name__ == "__main__":
    main()
