import pytest

from rlaif.dedupe import NearDuplicateIndex, dedupe, leaked_pairs, normalise


def test_normalise_ignores_case_punctuation_and_contractions():
    assert normalise("What's a GOOD vegan dinner??") == "what is a good vegan dinner"
    assert normalise("Café  crème, please!") == "cafe creme please"


def test_rephrased_question_is_a_near_duplicate():
    kept = dedupe(
        [
            "What is a quick vegan dinner for two people?",
            "What's a quick vegan dinner for two people??",
            "What is a quick vegan dinner for two people tonight?",
        ]
    )
    assert kept == ["What is a quick vegan dinner for two people?"]


def test_different_questions_are_kept_in_order():
    questions = [
        "How do I make crispy tofu in an air fryer?",
        "What spices go into a Thai green curry paste?",
        "Can you suggest a high-protein breakfast without eggs?",
    ]
    assert dedupe(questions) == questions


def test_leaked_pairs_finds_near_duplicates_across_sets():
    train = ["How do I cook lentils for a soup?", "What is a good picnic salad?"]
    holdout = [
        "How do I cook lentils for a soup??",
        "Which herbs suit roasted carrots?",
    ]
    leaks = leaked_pairs(train, holdout)
    assert leaks == [("How do I cook lentils for a soup??", train[0])]


def test_index_rejects_a_threshold_outside_the_unit_interval():
    with pytest.raises(ValueError, match="threshold"):
        NearDuplicateIndex(threshold=1.5)
