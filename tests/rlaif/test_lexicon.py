import pytest

from rlaif.lexicon import animal_products, find_animal_products, is_vegetarian

CASES = [
    # (text, animal products that count)
    ("Try a chicken curry with rice.", ["chicken"]),
    ("Try a chickpea curry with rice.", []),
    ("Roast the anchovies with garlic.", ["anchovies"]),
    ("Two sausages and a rasher of Bacon.", ["sausages", "bacon"]),
    ("Grill the prawns and serve with lime.", ["prawns"]),
    ("Catfish tacos with slaw.", ["catfish"]),
    ("Simmer it in chicken stock for more flavour.", ["chicken"]),
    ("Add a splash of fish sauce at the end.", ["fish sauce"]),
    ("Thicken the sauce with a little gelatin.", ["gelatin"]),
    ("Fry the onions in lard first.", ["lard"]),
    ("A dash of Worcestershire sauce.", ["worcestershire sauce"]),
    ("Finish it with a little oyster sauce.", ["oyster sauce"]),
    ("Vegan chicken nuggets with ketchup.", []),
    ("Plant-based bacon on toast.", []),
    ("Mock duck with hoisin pancakes.", []),
    ("Vegan pulled pork made from jackfruit.", []),
    ("A stir-fry without anchovies.", []),
    ("Use agar instead of gelatin.", []),
    ("Gelatin-free gummies.", []),
    ("No fish sauce in this one.", []),
    ("Oyster mushrooms fried until crisp.", []),
    ("Chicken of the woods is a mushroom.", []),
    ("Slice a beefsteak tomato.", []),
    ("Mushroom chicken stir-fry.", ["chicken"]),
    ("Tofu and chicken skewers.", ["chicken"]),
    ("Vegan cheese, then chicken on top.", ["chicken"]),
    ("Eggs, butter and honey on toast.", []),
    ("Vegetable stock and eggplant.", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_lexicon_counts_animal_products(text, expected):
    assert animal_products(text) == expected
    assert is_vegetarian(text) is (not expected)


def test_exempt_matches_say_why():
    (match,) = find_animal_products("Vegan chicken nuggets")
    assert not match.counted
    assert "vegan" in match.reason
