"""Token ids to text, one piece at a time, never splitting a character.

A byte-level BPE token is a run of bytes, not of characters: an emoji (four
UTF-8 bytes) or an accent can be spread over two or three tokens. Decoding
each token alone would send U+FFFD replacement characters to the client,
and the joined stream would differ from the text of the same request
without streaming. :class:`IncrementalDetokenizer` decodes a short window
of recent tokens and holds back text while it ends in an incomplete UTF-8
sequence; :class:`StopMatcher` holds back text that may be the start of a
stop sequence. Both streamed and plain completions go through the same
pair, so their texts are equal by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

REPLACEMENT = "\ufffd"


class Decoder(Protocol):
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


class IncrementalDetokenizer:
    """Turn a growing list of token ids into whole-character text pieces.

    The window starts at ``prefix_offset`` so that tokenizers whose decoding
    depends on the previous token (SentencePiece's leading spaces) decode
    the new tokens in context; the text up to ``read_offset`` was already
    sent.
    """

    def __init__(self, tokenizer: Decoder, *, skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    @property
    def token_ids(self) -> list[int]:
        return list(self._ids)

    def push(self, ids: Sequence[int]) -> str:
        """Add tokens; return the text they complete (maybe empty)."""
        self._ids.extend(ids)
        sent = self._decode(self._prefix_offset, self._read_offset)
        window = self._decode(self._prefix_offset, len(self._ids))
        if len(window) <= len(sent) or window.endswith(REPLACEMENT):
            # Nothing new, or the last character is still missing bytes.
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return window[len(sent) :]

    def flush(self) -> str:
        """The text held back at the end of generation.

        A reply cut by ``max_tokens`` can end inside a character; its
        incomplete bytes are dropped rather than sent as U+FFFD.
        """
        sent = self._decode(self._prefix_offset, self._read_offset)
        window = self._decode(self._prefix_offset, len(self._ids))
        self._prefix_offset = self._read_offset = len(self._ids)
        return window[len(sent) :].rstrip(REPLACEMENT)

    def _decode(self, start: int, end: int) -> str:
        if start >= end:
            return ""
        return self._tokenizer.decode(
            self._ids[start:end], skip_special_tokens=self._skip_special
        )


class StopMatcher:
    """Cut the text at the first stop sequence, holding back partial matches.

    Text that could be the beginning of a stop sequence is not released
    until the next piece shows whether it is: a client must never receive
    the first half of a stop sequence that a plain request would have cut.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Add text; return what is safe to send. Sets ``stopped`` on a match."""
        if self.stopped:
            return ""
        if not self._stops:
            return text
        buffer = self._held + text
        cut = min((i for s in self._stops if (i := buffer.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        hold = self._longest_partial_match(buffer)
        self._held = buffer[len(buffer) - hold :] if hold else ""
        return buffer[: len(buffer) - hold]

    def flush(self) -> str:
        """Release held text at the end of generation (no stop followed)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_partial_match(self, buffer: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
