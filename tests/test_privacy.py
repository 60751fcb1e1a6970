"""PII masking of customer text: the forms that must be masked, and the numbers that must stay."""

from __future__ import annotations

import pytest

from boucle.operators.privacy import DEFAULT_REGIONS, mask_pii, regions_for

# (text, masked): every form the masking engine must recognise, each to its own placeholder.
PII_FORMS = [
    # e-mail addresses, plain and obfuscated
    ("écrivez-moi à jean.dupont@mail.fr", "écrivez-moi à [email]"),
    ("mail: first.last+shop@sub.example.co.uk.", "mail: [email]."),
    ("write to jean dot dupont at gmail dot com please", "write to [email] please"),
    ("contact: jean(at)gmail.com", "contact: [email]"),
    ("jean [at] gmail [dot] com", "[email]"),
    ("jean.dupont {at} orange {dot} fr merci", "[email] merci"),
    ("jean arobase gmail point com", "[email]"),
    ("Mail me at jane_smith @ example.com", "Mail me at [email]"),
    ("JEAN AT GMAIL DOT COM", "[email]"),
    # phone numbers, national and international
    ("Rappelez-moi au 06 12 34 56 78", "Rappelez-moi au [phone]"),
    ("tel 06.12.34.56.78 svp", "tel [phone] svp"),
    ("tel 06-12-34-56-78", "tel [phone]"),
    ("appelez le 06/12/34/56/78", "appelez le [phone]"),
    ("mon portable 0612345678", "mon portable [phone]"),
    ("+33 6 12 34 56 78", "[phone]"),
    ("+33 (0)6 12 34 56 78", "[phone]"),
    ("0033 6 12 34 56 78", "[phone]"),
    ("+33612345678", "[phone]"),
    ("(+33) 6 12 34 56 78", "[phone]"),
    ("+32 470 12 34 56", "[phone]"),
    ("Call me on 07700 900123.", "Call me on [phone]."),
    ("+44 20 7946 0958 anytime", "[phone] anytime"),
    ("(020) 7946-0958", "[phone]"),
    ("call (415) 555-2671 after 6", "call [phone] after 6"),
    ("call 415-555-2671", "call [phone]"),
    ("+1 415 555 2671", "[phone]"),
    ("ruf an: 030 12345678", "ruf an: [phone]"),
    ("Handy +49 151 23456789", "Handy [phone]"),
    ("chiamami al 347 123 4567", "chiamami al [phone]"),
    ("llámame al 612 34 56 78", "llámame al [phone]"),
    ("+34 91 123 45 67", "[phone]"),
    # card numbers, CVV, expiry
    ("carte 4970 1012 3456 7890 débitée deux fois", "carte [card] débitée deux fois"),
    ("card 4111-1111-1111-1111", "card [card]"),
    ("amex 3782 822463 10005", "amex [card]"),
    ("paid with 5555555555554444 twice", "paid with [card] twice"),
    ("cvv 123", "cvv [cvv]"),
    ("CVC: 4321 please", "CVC: [cvv] please"),
    ("cryptogramme 987", "cryptogramme [cvv]"),
    ("exp 09/27", "exp [expiry]"),
    ("expiry 09/2027", "expiry [expiry]"),
    ("date d'expiration : 11/26", "date d'expiration : [expiry]"),
    ("valid thru 01-28", "valid thru [expiry]"),
    # bank accounts
    ("IBAN FR76 3000 6000 0112 3456 7890 189 pour le remboursement", "IBAN [iban] pour le remboursement"),
    ("iban fr7630006000011234567890189", "iban [iban]"),
    ("DE89 3704 0044 0532 0130 00", "[iban]"),
    ("GB82 WEST 1234 5698 7654 32", "[iban]"),
    # French social-security numbers (NIR)
    ("numéro de sécu 2 95 10 99 126 111 93", "numéro de sécu [nir]"),
    ("NIR 295109912611193", "NIR [nir]"),
    ("sécu 2 53 07 2A 073 004 43", "sécu [nir]"),
    ("sécu 1 85 05 78 006 084", "sécu [nir]"),
]

# Numbers that are not personal data: dates, times, prices, quantities, references.
KEPT = [
    "Attente de 20 minutes pour 2 articles à 12,50 €",
    "Ticket n° 2026 du 01/10, caisse 12",
    "Waited 45 minutes, order 12345",
    "We flew on 12-17-2012 and came back on 2013-06-02",
    "réservé le 02/06/2013 pour le 17.12.2012",
    "dates: 2013/06/02, 02-06-13, 1.2.2013",
    "le 2 02/06/2013 à 10:30",
    "boarding at 10:30, landing 14h45, open 08.30-12.00",
    "open from 7.00 to 10.30 every day",
    "I paid 1 299,99 € for two seats",
    "total 12 345 678 € for the fleet",
    "prix 1 234 567,89 EUR",
    "costs $ 1 234 567 890 now",
    "2 x 500 g, lot de 12, 3 kg",
    "commande n° 4500123456 jamais livrée",
    "order #112-4567890-1234567 never arrived",
    "ref 2024-123456",
    "ticket CMD-2024-000123",
    "colis 6A12345678901 perdu",
    "flight AF 1234 was 2 h late",
    "event 123e4567-e89b-12d3-a456-426614174000",
    "barcode 3017620422003",
    "occurred_at 2026-11-22T10:31:05.120Z",
    "room 214, 3rd floor, 75011 Paris",
    "we waited at the counter for 20 minutes",
    "I was at the store at 10 dot 30",
    "NPS 0 10 CSAT 1 5",
    "",
]


@pytest.mark.parametrize("text, masked", PII_FORMS)
def test_pii_is_masked(text, masked):
    assert mask_pii(text) == masked


def test_the_list_covers_thirty_forms():
    assert len(PII_FORMS) >= 30 and len(KEPT) >= 20


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_numbers_are_kept(text):
    assert mask_pii(text) == text
    assert mask_pii(text, regions_for("FR")) == text


def test_region_hints_add_the_sites_country():
    danish = "ring til 32 12 34 56"  # a Danish number: 8 digits, no trunk 0, valid in none of the defaults
    assert mask_pii(danish) == danish
    assert mask_pii(danish, regions_for("DK")) == "ring til [phone]"
    assert regions_for("DK")[0] == "DK" and regions_for("xx") == DEFAULT_REGIONS


def test_feedback_rows_use_the_sites_country():
    from boucle.flows.rows import feedback_rows
    from boucle.operators.decode import Feedback
    from boucle.operators.windows import WindowedBatch

    event = Feedback("e1", 0, "dk1", "store", "", {"nps": 1}, {}, "ring til 32 12 34 56", "en", {}, 0, "t:0:0")
    batch = feedback_rows(WindowedBatch([event], []), {"dk1": "north"}, {"dk1": regions_for("DK")})[0]
    assert batch.data[batch.columns.index("comment")] == ["ring til [phone]"]


def test_masking_is_idempotent():
    for _, masked in PII_FORMS:
        assert mask_pii(masked) == masked


def test_masking_never_raises():
    """Every comment of the flow goes through it: random texts of the characters it reacts to."""
    import random

    pieces = list("0123456789 ./-()+@aAtTdoDOcmfrRBIN:h€$%\n\t,") + [
        "٦", "６", "²", " at ", " dot ", "(at)", "[dot]", "arobase", "cvv ", "exp ", "FR76", "GB82", "2A", "00", "+33",
        "é", "\x1b", "\u202e", ".com", "[email]"]
    rng = random.Random(13)
    for _ in range(5_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 60)))
        assert isinstance(mask_pii(text), str)


def test_huge_comments_stay_linear():
    """A 1 MB comment without spaces, or with an '@' at its end, is scanned, not backtracked."""
    for text in ("a." * 500_000 + "@", "1-" * 200_000, "jean at " * 100_000):
        assert mask_pii(text).startswith(text[:10])


def test_stored_feedback_comments_are_masked():
    from boucle.flows.rows import feedback_rows
    from boucle.operators.decode import Feedback
    from boucle.operators.windows import WindowedBatch

    event = Feedback("e1", 0, "s1", "store", "", {"nps": 1}, {}, "Appelez le 06 12 34 56 78 ou a@b.fr", "fr",
                     {"id": "c", "consent_contact": True, "email": "a@b.fr"}, 0, "t:0:0")
    batch = feedback_rows(WindowedBatch([event], []), {"s1": "north"})[0]
    assert batch.data[batch.columns.index("comment")] == ["Appelez le [phone] ou [email]"]
