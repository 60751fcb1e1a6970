"""Free-text comments in French and English: irritants, praise, purchases, negations, PII.

A comment names the irritant behind the lowest rating (or praises the best one for a promoter),
sometimes mentions a purchase ("j'ai acheté", "ma commande", "my order", "I bought"), sometimes
uses a negation ("pas trop long", "not too long"), and rarely leaks an e-mail address or a phone
number so that masking downstream is exercised. Comments never contain a newline.

>>> composer = CommentComposer(["waiting_time", "cleanliness"])
>>> composer.compose("fr", worst=0, best=1, mood=0, purchase=1, pii=0, pick=0)
"J'ai acheté un aspirateur. Attente interminable à l'accueil."
>>> composer.compose("en", worst=0, best=1, mood=2, purchase=0, pii=1, pick=0)
'Great experience! The store was spotless. Call me on 07700 900123.'
"""

from __future__ import annotations

__all__ = ["CommentComposer", "PURCHASE_OPENERS"]

# attribute: (irritants fr, irritants en, praise fr, praise en). Praise includes negations.
_PHRASES: dict[str, tuple[list[str], list[str], list[str], list[str]]] = {
    "waiting_time": (
        ["Attente interminable à l'accueil.", "Plus de 30 minutes d'attente, inadmissible.",
         "Trop d'attente au rayon.", "Beaucoup trop d'attente, personne pour nous servir."],
        ["Waited far too long to be served.", "Over 30 minutes of waiting, unacceptable.",
         "The queue was endless.", "Nobody came to help, a very long wait."],
        ["Attente pas trop longue, merci.", "On a été servis tout de suite.", "Pas d'attente du tout."],
        ["The wait was not too long.", "Served straight away.", "No waiting at all, great."],
    ),
    "staff_friendliness": (
        ["Vendeur désagréable et pas aimable du tout.", "Accueil froid, on ne m'a même pas dit bonjour.",
         "Personnel impoli."],
        ["The staff member was rude.", "Nobody even said hello, very unfriendly.",
         "Unpleasant and dismissive staff."],
        ["Personnel très aimable et souriant.", "Accueil chaleureux, merci à l'équipe.",
         "Une vendeuse adorable."],
        ["Very friendly and welcoming staff.", "The team was lovely.", "Staff were not unfriendly at all, quite the opposite."],
    ),
    "staff_competence": (
        ["Le conseiller ne connaissait pas les produits.", "Mauvais conseils, j'ai dû me débrouiller seul.",
         "Personne n'a su répondre à ma question."],
        ["The adviser did not know the products.", "Got the wrong advice.", "Nobody could answer my question."],
        ["Très bons conseils du vendeur.", "Conseiller compétent et précis.", "Pas de mauvaise surprise, conseils justes."],
        ["Great advice from the staff.", "Knowledgeable and helpful adviser.", "Not a single wrong answer, very competent."],
    ),
    "cleanliness": (
        ["Magasin sale, toilettes dégoûtantes.", "Les rayons étaient sales et encombrés.", "Propreté douteuse."],
        ["The store was dirty.", "Filthy toilets.", "Aisles were messy and not clean."],
        ["Magasin impeccable.", "Très propre.", "Rien à redire sur la propreté."],
        ["The store was spotless.", "Very clean.", "Not a speck of dust, very tidy."],
    ),
    "product_availability": (
        ["Produit en rupture de stock.", "Rien en rayon, article introuvable.",
         "Le produit annoncé n'était pas disponible."],
        ["The product was out of stock.", "Empty shelves, could not find the item.",
         "The advertised item was not available."],
        ["Tout était disponible.", "J'ai trouvé tout ce que je cherchais.", "Pas de rupture, rayons bien remplis."],
        ["Everything was in stock.", "Found everything I needed.", "No empty shelves, well stocked."],
    ),
    "checkout_speed": (
        ["Une seule caisse ouverte, la queue était énorme.", "Passage en caisse beaucoup trop long.",
         "Caisses automatiques en panne."],
        ["Only one till open, huge queue at checkout.", "Checkout took far too long.",
         "Self-checkouts were broken."],
        ["Passage en caisse rapide.", "Caisse pas trop longue malgré le monde.", "Aucune attente en caisse."],
        ["Quick checkout.", "Checkout was not too slow despite the crowd.", "No queue at the tills."],
    ),
    "price_perception": (
        ["Trop cher pour ce que c'est.", "Prix pas du tout compétitifs.", "Les prix ont encore augmenté."],
        ["Far too expensive.", "Prices are not competitive at all.", "Prices keep going up."],
        ["Bon rapport qualité-prix.", "Prix corrects.", "Pas cher et de qualité."],
        ["Good value for money.", "Fair prices.", "Not expensive and good quality."],
    ),
    "store_layout": (
        ["Impossible de trouver les rayons.", "Magasin mal organisé.", "La signalétique est confuse."],
        ["Could not find anything, poor signage.", "Badly organised store.", "The layout is confusing."],
        ["Magasin bien agencé.", "On trouve facilement les rayons.", "Pas compliqué de s'orienter."],
        ["Well laid out store.", "Easy to find my way.", "Not hard to find anything."],
    ),
}

_GENERIC = (
    ["Service très en dessous de mes attentes."], ["Service well below my expectations."],
    ["Service au top."], ["Excellent service."],
)

_OPENERS_BAD = (["Très déçu.", "Expérience décevante.", "Franchement pas terrible.", ""],
                ["Very disappointed.", "Poor experience.", "Not great, honestly.", ""])
_OPENERS_MID = (["Correct sans plus.", "Dans l'ensemble ça va.", ""], ["It was okay.", "Fine overall.", ""])
_OPENERS_GOOD = (["Super expérience !", "Très satisfait.", "Parfait.", ""],
                 ["Great experience!", "Very happy.", "Perfect.", ""])

PURCHASE_OPENERS = (
    ["J'ai acheté un aspirateur.", "J'ai acheté un lave-linge.", "Ma commande a été retirée en magasin.",
     "Achat d'un ordinateur ce matin.", "J'ai commandé une télévision.", "J'ai payé en caisse."],
    ["I bought a vacuum cleaner.", "I bought a kettle.", "Picked up my order in store.",
     "Purchase of a laptop this morning.", "My online order arrived today.", "I paid at the till."],
)

_PII = (
    ["Rappelez-moi au 06 12 34 56 78.", "Contactez-moi : jean.dupont@example.com", "Mon numéro : +33 6 98 76 54 32."],
    ["Call me on 07700 900123.", "Email me at jane.smith@example.co.uk", "My number is +44 7700 900456."],
)


class CommentComposer:
    """Builds one comment from small integer choices (drawn vectorised by the caller).

    ``mood`` is 0 for a detractor, 1 for a passive, 2 for a promoter; ``worst``/``best`` index
    the attributes; ``pick`` is any non-negative integer used to choose among variants.
    """

    def __init__(self, attribute_names, labels: dict[str, tuple[str, str]] | None = None) -> None:
        labels = labels or {}
        attribute_names = list(attribute_names)
        self._phrases = [] if attribute_names else [_GENERIC]
        for name in attribute_names:
            if name in _PHRASES:
                self._phrases.append(_PHRASES[name])
            else:
                fr, en = labels.get(name, (name, name))
                self._phrases.append(
                    ([f"{fr} : pas satisfaisant."], [f"{en}: not good enough."],
                     [f"{fr} : très bien."], [f"{en}: very good."])
                )

    def compose(self, language: str, worst: int, best: int, mood: int, purchase: int, pii: int, pick: int) -> str:
        en = 1 if language == "en" else 0
        phrases = self._phrases
        parts = []
        if purchase:
            options = PURCHASE_OPENERS[en]
            parts.append(options[pick % len(options)])
        if mood == 0:
            opener = _OPENERS_BAD[en][(pick >> 3) % len(_OPENERS_BAD[en])]
            options = phrases[worst][en]
        elif mood == 1:
            opener = _OPENERS_MID[en][(pick >> 3) % len(_OPENERS_MID[en])]
            options = phrases[worst][en] if pick & 64 else phrases[best][2 + en]
        else:
            opener = _OPENERS_GOOD[en][(pick >> 3) % len(_OPENERS_GOOD[en])]
            options = phrases[best][2 + en]
        if opener and not purchase:
            parts.append(opener)
        parts.append(options[(pick >> 7) % len(options)])
        if pii:
            options = _PII[en]
            parts.append(options[(pick >> 10) % len(options)])
        return " ".join(parts)
