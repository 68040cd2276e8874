"""An independent check for animal products in an answer: a word list.

The evaluation counts non-vegetarian answers twice: by the judge that
trained the policy, and by this lexicon, which shares no code or data with
the judge. If PPO learned to fool the embedding judge (say, by writing
"seitan" next to "chicken"), the lexicon still sees the chicken.

What it does, and does not do (it is a word list, not a reader):
- whole words only, singular and plural ("chickpea" is not "chicken");
  words ending in "fish" count (catfish, shellfish);
- hidden products count: gelatin, lard, suet, fish or oyster sauce, bone
  broth, Worcestershire sauce (anchovies) and stocks named after an animal;
- a substitute marker right before the word does not count: "vegan
  chicken", "plant-based bacon", "mock duck", "meatless sausages", allowing
  one word in between ("vegan pulled pork"); a plant word alone is not a
  marker, since "mushroom chicken stir-fry" is chicken;
- a negation in the same clause, up to three words before, does not count:
  "without anchovies", "no fish sauce", "agar instead of gelatin", and
  neither does a "-free" suffix ("gelatin-free");
- named plants count as plants: oyster mushrooms, chicken of the woods,
  beefsteak tomatoes, crab apples, coconut meat;
- eggs, dairy and honey are vegetarian here (lacto-ovo vegetarian).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MEAT = (
    "meat", "chicken", "beef", "pork", "lamb", "mutton", "veal", "venison",
    "turkey", "duck", "goose", "quail", "rabbit", "ham", "bacon", "sausage",
    "salami", "pepperoni", "prosciutto", "pancetta", "chorizo", "steak",
    "brisket", "meatball", "minced meat", "hot dog", "jerky", "gammon", "liver",
    "foie gras", "pastrami", "hamburger", "cheeseburger",
)  # fmt: skip
SEAFOOD = (
    "fish", "salmon", "tuna", "cod", "trout", "sardine", "anchovy", "mackerel",
    "tilapia", "haddock", "halibut", "herring", "sea bass", "snapper", "shrimp",
    "prawn", "crab", "lobster", "scallop", "mussel", "clam", "oyster", "squid",
    "calamari", "octopus", "caviar", "roe", "bonito", "eel", "crayfish",
    "seafood",
)  # fmt: skip
HIDDEN = (
    "gelatin", "gelatine", "lard", "suet", "tallow", "fish sauce",
    "oyster sauce", "bone broth", "worcestershire sauce", "rennet", "dashi",
    "isinglass", "carmine", "schmaltz",
)  # fmt: skip
# Plants and dishes whose names contain an animal word.
PLANT_NAMES = (
    "oyster mushroom", "oyster mushrooms", "lobster mushroom",
    "lobster mushrooms", "chicken of the woods", "hen of the woods",
    "beefsteak tomato", "beefsteak tomatoes", "crab apple", "crab apples",
    "coconut meat", "duck sauce", "vegetable stock", "vegetable broth",
)  # fmt: skip
SUBSTITUTE_MARKERS = frozenset(
    (
        "vegan", "vegetarian", "plant-based", "plantbased", "mock", "faux",
        "fake", "imitation", "meatless", "meat-free", "veggie", "vegetable-based",
        "soy-based", "dairy-free-vegan", "meat-substitute", "meatfree",
    )
)  # fmt: skip
NEGATIONS = (
    "without", "no", "not", "never", "instead of", "in place of", "free of",
    "skip", "skip the", "omit", "omit the", "replace", "replace the",
    "rather than", "swap out", "swap out the",
)  # fmt: skip
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\n]| and | or | but | with | plus ")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


@dataclass(frozen=True)
class LexiconMatch:
    """One animal-product word in a text, and whether it counts."""

    term: str
    category: str
    start: int
    end: int
    counted: bool
    reason: str = ""


def _plural_forms(term: str) -> list[str]:
    head, _, last = term.rpartition(" ")
    prefix = f"{head} " if head else ""
    if last.endswith("y") and last[-2:-1] not in "aeiou":
        plural = last[:-1] + "ies"
    elif last.endswith(("s", "sh", "ch", "x")):
        plural = last + "es"
    else:
        plural = last + "s"
    return [term, prefix + plural]


@lru_cache(maxsize=1)
def _term_pattern() -> re.Pattern[str]:
    forms: dict[str, str] = {}
    for category, terms in (("meat", MEAT), ("seafood", SEAFOOD), ("hidden", HIDDEN)):
        for term in terms:
            for form in _plural_forms(term):
                forms[form] = category
    # Longest first, so "fish sauce" wins over "fish".
    alternatives = sorted(forms, key=len, reverse=True)
    body = "|".join(re.escape(form).replace(r"\ ", r"\s+") for form in alternatives)
    # Words ending in "fish" (catfish, shellfish) count as fish.
    return re.compile(rf"\b(?:{body}|[a-z]+fish(?:es)?)(?:'s)?\b")


def _category(term: str) -> str:
    for category, terms in (("hidden", HIDDEN), ("seafood", SEAFOOD), ("meat", MEAT)):
        for known in terms:
            if term in _plural_forms(known):
                return category
    return "seafood" if term.endswith(("fish", "fishes")) else "meat"


def _mask_plant_names(text: str) -> str:
    for name in sorted(PLANT_NAMES, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name)}\b", lambda m: " " * len(m.group()), text)
    return text


def _clause_before(text: str, start: int) -> str:
    """The text between the previous clause break and `start`."""
    before = text[:start]
    breaks = list(_CLAUSE_BREAK.finditer(before))
    return before[breaks[-1].end() :] if breaks else before


def _exemption(text: str, start: int, end: int) -> str:
    if re.match(r"-(?:free|less)\b", text[end:]):
        return "negated by a -free/-less suffix"
    words = _WORD.findall(_clause_before(text, start).replace('"', " "))
    if words[-1:] and words[-1] in SUBSTITUTE_MARKERS:
        return f"substitute marked by {words[-1]!r}"
    if words[-2:-1] and words[-2] in SUBSTITUTE_MARKERS:
        return f"substitute marked by {words[-2]!r}"
    window = " " + " ".join(words[-3:]) + " "
    for negation in NEGATIONS:
        if f" {negation} " in window:
            return f"negated by {negation!r}"
    return ""


def find_animal_products(text: str) -> list[LexiconMatch]:
    """Every animal-product word in `text`, each marked counted or exempt."""
    lowered = _mask_plant_names(text.lower().replace("\u2019", "'"))
    matches = []
    for found in _term_pattern().finditer(lowered):
        term = re.sub(r"\s+", " ", found.group()).removesuffix("'s")
        reason = _exemption(lowered, found.start(), found.end())
        matches.append(
            LexiconMatch(
                term=term,
                category=_category(term),
                start=found.start(),
                end=found.end(),
                counted=not reason,
                reason=reason,
            )
        )
    return matches


def animal_products(text: str) -> list[str]:
    """The animal-product words in `text` that count, in order."""
    return [match.term for match in find_animal_products(text) if match.counted]


def is_vegetarian(text: str) -> bool:
    """True when the lexicon finds no animal product that counts."""
    return not animal_products(text)
