"""Incremental detokenizing and stop sequences, on a real byte-level BPE."""

from __future__ import annotations

import pytest
from chat_fixtures import CORPUS

from rlaif.tiny_model import train_tokenizer
from services.chat.detokenize import IncrementalDetokenizer, StopMatcher

TEXT = "Voilà 🥗🍅 crème brûlée, nai\u0301ve jalapeño 🌶️!"


@pytest.fixture(scope="module")
def tokenizer():
    # A small vocabulary leaves most multi-byte characters split over tokens.
    return train_tokenizer(CORPUS, vocab_size=300)


def test_token_by_token_decoding_would_show_replacement_chars(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)

    naive = [tokenizer.decode([i]) for i in ids]

    assert any("\ufffd" in piece for piece in naive)  # the hazard is real here


def test_pieces_are_whole_characters_and_join_to_the_text(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    detokenizer = IncrementalDetokenizer(tokenizer)

    pieces = [detokenizer.push([i]) for i in ids] + [detokenizer.flush()]

    assert "".join(pieces) == TEXT
    assert not any("\ufffd" in piece for piece in pieces)


def test_a_reply_cut_inside_a_character_drops_the_partial_bytes(tokenizer):
    ids = tokenizer.encode("ok 🥗", add_special_tokens=False)
    detokenizer = IncrementalDetokenizer(tokenizer)

    text = "".join(detokenizer.push([i]) for i in ids[:-1]) + detokenizer.flush()

    assert text == "ok "


def test_special_tokens_are_not_sent(tokenizer):
    detokenizer = IncrementalDetokenizer(tokenizer)
    ids = tokenizer.encode("hi", add_special_tokens=False) + [tokenizer.eos_token_id]

    assert "".join(detokenizer.push([i]) for i in ids) + detokenizer.flush() == "hi"


@pytest.mark.parametrize(
    ("pieces", "stops", "sent", "stopped"),
    [
        (["Hello", " world"], [], "Hello world", False),
        (["Hello", " wor", "ld"], ["world"], "Hello ", True),
        (["a", "b", "c"], ["bc"], "a", True),
        (["Hel", "lo"], ["lox"], "Hello", False),  # partial match released at end
        (["x END", " more"], ["END", "x"], "", True),  # the earliest stop wins
        (["ab", "cd"], ["bd"], "abcd", False),
        (["🥗", " ok"], ["🥗"], "", True),
    ],
)
def test_stop_matcher_cuts_at_the_first_stop(pieces, stops, sent, stopped):
    matcher = StopMatcher(stops)

    out = "".join(matcher.push(p) for p in pieces) + matcher.flush()

    assert out == sent
    assert matcher.stopped is stopped


def test_stop_matcher_holds_back_a_possible_stop_start():
    matcher = StopMatcher(["</answer>"])

    assert matcher.push("done </ans") == "done "
    assert matcher.push("wer> tail") == ""
    assert matcher.stopped
