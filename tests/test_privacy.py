"""PII masking of stored comments: e-mail addresses, phone numbers and card-like numbers."""

from __future__ import annotations

import pytest

from boucle.operators.privacy import mask_pii


@pytest.mark.parametrize(
    "text, masked",
    [
        ("écrivez-moi à jean.dupont@mail.fr", "écrivez-moi à [email]"),
        ("mail: first.last+shop@sub.example.co.uk.", "mail: [email]."),
        ("Rappelez-moi au 06 12 34 56 78", "Rappelez-moi au [phone]"),
        ("tel 06.12.34.56.78 svp", "tel [phone] svp"),
        ("+33 6 12 34 56 78", "[phone]"),
        ("+32 470 12 34 56", "[phone]"),
        ("Call me on 07700 900123.", "Call me on [phone]."),
        ("+44 20 7946 0958 anytime", "[phone] anytime"),
        ("(020) 7946-0958", "[phone]"),
        ("carte 4970 1012 3456 7890 débitée deux fois", "carte [card] débitée deux fois"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("amex 3782 822463 10005", "amex [card]"),
    ],
)
def test_pii_is_masked(text, masked):
    assert mask_pii(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "Attente de 20 minutes pour 2 articles à 12,50 €",
        "Ticket n° 2026 du 01/10, caisse 12",
        "Waited 45 minutes, order 12345",
        "",
    ],
)
def test_ordinary_numbers_are_kept(text):
    assert mask_pii(text) == text


def test_stored_feedback_comments_are_masked():
    from boucle.flows.rows import feedback_rows
    from boucle.operators.decode import Feedback
    from boucle.operators.windows import WindowedBatch

    event = Feedback("e1", 0, "s1", "store", "", {"nps": 1}, {}, "Appelez le 06 12 34 56 78 ou a@b.fr", "fr",
                     {"id": "c", "consent_contact": True, "email": "a@b.fr"}, 0, "t:0:0")
    batch = feedback_rows(WindowedBatch([event], []), {"s1": "north"})[0]
    assert batch.data[batch.columns.index("comment")] == ["Appelez le [phone] ou [email]"]
