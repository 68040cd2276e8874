"""The bootstrap corpus: short food answers, half of them not vegetarian.

The CPU demo needs a base policy whose answers the judge scores very
differently, since PPO learns nothing from rewards without variance. Every
question of the corpus is answered twice, with the same sentence skeleton:
once with a vegetarian main ingredient and once with meat or fish (or, for a
share of pairs, a vegetarian dish with a hidden animal product: chicken
stock, fish sauce, gelatin, anchovies). A model trained on it samples both
kinds for a new question about half of the time, and whether an answer is
vegetarian depends on a few ingredient words, which is what the judge must
read and what PPO can shift.

`python -m rlaif.corpus --out data/food_qa.jsonl` rewrites the shipped file;
the same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

from rlaif.prompt_sources import VEGETABLES, load_topics, template_question

# (adjective form, noun form) of each main ingredient.
VEGETARIAN_MAINS = (
    ("chickpea", "chickpeas"),
    ("lentil", "lentils"),
    ("tofu", "tofu"),
    ("tempeh", "tempeh"),
    ("black bean", "black beans"),
    ("mushroom", "mushrooms"),
    ("paneer", "paneer"),
    ("halloumi", "halloumi"),
    ("seitan", "seitan"),
    ("jackfruit", "jackfruit"),
    ("white bean", "white beans"),
    ("cauliflower", "cauliflower"),
    ("sweet potato", "sweet potatoes"),
    ("eggplant", "eggplant"),
    ("spinach", "spinach"),
)
ANIMAL_MAINS = (
    ("chicken", "chicken"),
    ("beef", "beef"),
    ("pork", "pork"),
    ("salmon", "salmon"),
    ("tuna", "tuna"),
    ("shrimp", "shrimp"),
    ("bacon", "bacon"),
    ("lamb", "lamb"),
    ("turkey", "turkey"),
    ("cod", "cod"),
    ("sausage", "sausage"),
    ("duck", "duck"),
    ("prawn", "prawns"),
    ("ham", "ham"),
    ("anchovy", "anchovies"),
)
# A finishing sentence with a hidden animal product, and its vegetarian twin.
HIDDEN_ANIMAL_FINISHES = (
    (
        "Simmer it in chicken stock for more flavour.",
        "Simmer it in vegetable stock for more flavour.",
    ),
    ("Add a splash of fish sauce at the end.", "Add a splash of soy sauce at the end."),
    ("Toss it with an anchovy dressing.", "Toss it with a lemon and mustard dressing."),
    ("Top it with crispy bacon bits.", "Top it with toasted seeds."),
    (
        "Thicken the sauce with a little gelatin.",
        "Thicken the sauce with a little cornstarch.",
    ),
    ("Fry the onions in lard first.", "Fry the onions in olive oil first."),
    ("Stir in a spoon of beef broth.", "Stir in a spoon of miso broth."),
    ("Finish it with a little oyster sauce.", "Finish it with a little hoisin sauce."),
)
NEUTRAL_FINISHES = (
    "It keeps well for lunch the next day.",
    "Add fresh herbs just before serving.",
    "Taste and adjust the salt at the end.",
    "A squeeze of lemon brightens it up.",
    "Leftovers freeze well.",
    "It is ready in about thirty minutes.",
    "Serve it warm.",
)
DISHES = (
    "curry",
    "stir-fry",
    "soup",
    "salad",
    "wrap",
    "pasta",
    "rice bowl",
    "stew",
    "tacos",
    "sandwich",
    "skewers",
    "pie",
    "burger",
    "noodle bowl",
    "casserole",
    "flatbread",
)
ADJECTIVES = ("simple", "hearty", "quick", "warming", "fresh", "spicy", "light")
SIDES = (
    "rice",
    "warm flatbread",
    "a green salad",
    "roasted potatoes",
    "crusty bread",
    "quinoa",
    "noodles",
    "steamed greens",
)
SPICES = (
    "cumin and garlic",
    "smoked paprika",
    "ginger and soy sauce",
    "chili and lime",
    "garam masala",
    "oregano and lemon",
    "miso and sesame",
    "harissa",
)
COOK_VERBS = ("roast", "grill", "simmer", "pan-fry", "bake", "sear")
# Skeletons: {a} is "a"/"an" for the word that follows it.
ANSWER_SKELETONS = (
    "Try {a} {adj} {main} {dish} with {veg} and {veg2}.",
    "{A} {main} {dish} is a great choice. {Cook} the {mains} with {spice} "
    "and serve it with {side}.",
    "Make {a} {main} {dish}: {cook} the {mains} with {spice}, then add {veg}.",
    "I would cook {a} {adj} {main} {dish}. {Cook} the {mains} with {spice} "
    "and serve it with {side}.",
    "{Cook} some {mains} with {spice} and serve them with {side} and {veg}.",
    "A good option is {a} {main} {dish} with {veg}.",
)


@dataclass(frozen=True, kw_only=True)
class Example:
    question: str
    answer: str
    vegetarian: bool

    def as_row(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "vegetarian": self.vegetarian,
        }


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _fill(skeleton: str, slots: dict, main: tuple[str, str]) -> str:
    adjective_form, noun_form = main
    # The article agrees with the word right after it in the skeleton.
    after_article = slots["adj"] if "{a} {adj}" in skeleton else adjective_form
    article = _article(after_article)
    return skeleton.format(
        **slots,
        main=adjective_form,
        mains=noun_form,
        a=article,
        A=article.capitalize(),
        Cook=slots["cook"].capitalize(),
    )


def answer_pair(rng: random.Random, hidden_share: float) -> tuple[str, str]:
    """(vegetarian answer, non-vegetarian answer) sharing one skeleton."""
    skeleton = rng.choice(ANSWER_SKELETONS)
    vegetable, vegetable2 = rng.sample(VEGETABLES, 2)
    slots = {
        "adj": rng.choice(ADJECTIVES),
        "dish": rng.choice(DISHES),
        "veg": vegetable,
        "veg2": vegetable2,
        "side": rng.choice(SIDES),
        "spice": rng.choice(SPICES),
        "cook": rng.choice(COOK_VERBS),
    }
    # A main that is also a listed vegetable would read "spinach ... spinach".
    vegetarian_main = rng.choice(
        [main for main in VEGETARIAN_MAINS if main[1] not in (vegetable, vegetable2)]
    )
    vegetarian = _fill(skeleton, slots, vegetarian_main)
    if rng.random() < hidden_share:
        animal_finish, vegetarian_finish = rng.choice(HIDDEN_ANIMAL_FINISHES)
        return f"{vegetarian} {vegetarian_finish}", f"{vegetarian} {animal_finish}"
    animal = _fill(skeleton, slots, rng.choice(ANIMAL_MAINS))
    if rng.random() < 0.4:
        finish = rng.choice(NEUTRAL_FINISHES)
        vegetarian, animal = f"{vegetarian} {finish}", f"{animal} {finish}"
    return vegetarian, animal


def generate_corpus(
    topics: list[str], n_questions: int, seed: int = 0, hidden_share: float = 0.15
) -> list[Example]:
    """Two examples (one vegetarian, one not) for each of `n_questions`."""
    rng = random.Random(seed)
    seen: set[str] = set()
    examples: list[Example] = []
    while len(seen) < n_questions:
        question = template_question(rng, topics)
        if question in seen:
            continue
        seen.add(question)
        vegetarian, animal = answer_pair(rng, hidden_share)
        pair = [
            Example(question=question, answer=vegetarian, vegetarian=True),
            Example(question=question, answer=animal, vegetarian=False),
        ]
        rng.shuffle(pair)
        examples.extend(pair)
    return examples


def read_corpus(path: Path) -> list[Example]:
    """The examples of a corpus file written by `write_corpus`."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    return [
        Example(
            question=row["question"],
            answer=row["answer"],
            vegetarian=bool(row["vegetarian"]),
        )
        for row in rows
    ]


def write_corpus(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.as_row()) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--topics", type=Path, default=Path("configs/prompts/topics.txt")
    )
    parser.add_argument("--out", type=Path, default=Path("data/food_qa.jsonl"))
    parser.add_argument("--n-questions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-share", type=float, default=0.15)
    args = parser.parse_args(argv)
    examples = generate_corpus(
        load_topics(args.topics), args.n_questions, args.seed, args.hidden_share
    )
    write_corpus(args.out, examples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
