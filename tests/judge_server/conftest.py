import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def rubrics():
    from judge_server.rubrics import load_rubrics

    return load_rubrics(ROOT / "configs" / "rubrics")


@pytest.fixture(scope="session")
def embedding_backend(rubrics):
    """The CPU default judge, loaded once (about 10 s on two cores)."""
    from judge_server.backends.embedding import EmbeddingBackend
    from judge_server.config import EmbeddingConfig

    backend = EmbeddingBackend(EmbeddingConfig())
    asyncio.run(backend.start(rubrics))
    return backend


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory):
    """A tiny random Llama and its tokenizer saved like a hub model."""
    from rlaif.tiny_model import MICRO_SHAPE, save_tiny_llama

    corpus = [
        "Score the text between the markers. Reply with the score first.",
        "0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 0.01 0.99",
        "Try a chickpea curry with rice. Try a chicken curry with rice.",
        "You are a judge who specialises in vegetarian cuisine.",
    ] * 20
    # One layer; the long context fits the rubric prompt in a small vocabulary.
    shape = replace(MICRO_SHAPE, num_hidden_layers=1, max_position_embeddings=2048)
    folder = tmp_path_factory.mktemp("tiny-judge")
    save_tiny_llama(folder, corpus, vocab_size=400, shape=shape, model_max_length=2048)
    return folder
