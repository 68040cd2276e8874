"""The fake judge's scoring rule, shared by the fixture and the tests.

A module of its own (not conftest) so that tests can import it: several
test folders have a conftest.py, and `from conftest import` would pick
whichever one pytest imported first.
"""

MEAT_WORDS = ("chicken", "beef", "pork", "salmon", "tuna", "shrimp", "bacon", "lamb")


def keyword_score(text: str) -> float:
    """0.1 when a meat word appears, else 0.9."""
    return 0.1 if any(word in text.lower() for word in MEAT_WORDS) else 0.9
