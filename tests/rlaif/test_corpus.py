from pathlib import Path

from rlaif.corpus import generate_corpus, read_corpus
from rlaif.lexicon import is_vegetarian
from rlaif.prompt_sources import load_topics

REPO = Path(__file__).resolve().parents[2]
TOPICS = load_topics(REPO / "configs/prompts/topics.txt")


def test_corpus_is_reproducible_from_its_seed():
    assert generate_corpus(TOPICS, 50, seed=3) == generate_corpus(TOPICS, 50, seed=3)
    assert generate_corpus(TOPICS, 50, seed=3) != generate_corpus(TOPICS, 50, seed=4)


def test_every_question_has_one_vegetarian_and_one_other_answer():
    examples = generate_corpus(TOPICS, 200, seed=0)
    by_question: dict[str, list[bool]] = {}
    for example in examples:
        by_question.setdefault(example.question, []).append(example.vegetarian)
    assert len(by_question) == 200
    assert all(sorted(labels) == [False, True] for labels in by_question.values())


def test_labels_agree_with_the_independent_lexicon():
    examples = generate_corpus(TOPICS, 300, seed=0)
    disagreements = [e for e in examples if is_vegetarian(e.answer) != e.vegetarian]
    assert disagreements == []


def test_answers_are_one_to_three_sentences():
    for example in generate_corpus(TOPICS, 200, seed=0):
        sentences = [s for s in example.answer.split(". ") if s]
        assert 1 <= len(sentences) <= 3, example.answer
        assert example.answer.endswith(".")


def test_shipped_corpus_is_the_generators_output():
    shipped = read_corpus(REPO / "data/food_qa.jsonl")
    assert shipped == generate_corpus(TOPICS, 2000, seed=0)
    share = sum(e.vegetarian for e in shipped) / len(shipped)
    assert share == 0.5
