"""Exact and near-duplicate removal for generated questions.

LLM-written prompt sets repeat themselves ("What's a good vegan dinner?" and
"What is a good vegan dinner??"), and a hold-out question that nearly repeats
a training question measures memory, not generalisation. Questions are
compared after normalisation (case, punctuation, common contractions) as sets
of word shingles; MinHash LSH (datasketch) finds candidate pairs without
comparing every pair, and each candidate is confirmed with the exact Jaccard
similarity so that a MinHash false positive never drops a question.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from datasketch import MinHash, MinHashLSH

_CONTRACTIONS = {
    "what's": "what is",
    "how's": "how is",
    "it's": "it is",
    "i'm": "i am",
    "i'd": "i would",
    "i've": "i have",
    "can't": "cannot",
    "don't": "do not",
    "doesn't": "does not",
    "you'd": "you would",
    "that's": "that is",
    "there's": "there is",
    "let's": "let us",
}
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def normalise(text: str) -> str:
    """Lower-case words without punctuation, accents or contractions."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.lower().replace("\u2019", "'")
    words = []
    for word in _WORD.findall(text):
        words.extend(_CONTRACTIONS.get(word, word.replace("'", "")).split())
    return " ".join(words)


def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-grams of the normalised text (the whole text if it is shorter)."""
    words = normalise(text).split()
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Jaccard similarity of two shingle sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class NearDuplicateIndex:
    """Questions seen so far, queryable for near-duplicates of a new one.

    `threshold` is the Jaccard similarity of word shingles at or above which
    two questions count as the same question.
    """

    threshold: float = 0.7
    shingle_size: int = 3
    num_perm: int = 128
    _lsh: MinHashLSH = field(init=False, repr=False)
    _shingles: dict[str, set[str]] = field(init=False, repr=False)
    _exact: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(
                f"threshold must be in (0, 1], got {self.threshold!r}; "
                "0.7 treats rephrasings of one question as duplicates"
            )
        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        self._shingles = {}
        self._exact = {}

    def __len__(self) -> int:
        return len(self._exact)

    def _minhash(self, grams: set[str]) -> MinHash:
        minhash = MinHash(num_perm=self.num_perm, seed=1)
        minhash.update_batch([gram.encode() for gram in grams])
        return minhash

    def find(self, text: str) -> str | None:
        """The key of a stored question that `text` duplicates, if any."""
        key = normalise(text)
        if key in self._exact:
            return key
        grams = shingles(text, self.shingle_size)
        for other in self._lsh.query(self._minhash(grams)):
            if jaccard(grams, self._shingles[other]) >= self.threshold:
                return other
        return None

    def add(self, text: str, *, keep_duplicates: bool = False) -> bool:
        """Store `text` unless it duplicates a stored question; True if stored.

        `keep_duplicates` stores near-duplicates too (not exact repeats), for
        a reference set that must be matched in full, as in a leakage check.
        """
        key = normalise(text)
        if key in self._exact:
            return False
        if not keep_duplicates and self.find(text) is not None:
            return False
        grams = shingles(text, self.shingle_size)
        self._lsh.insert(key, self._minhash(grams))
        self._shingles[key] = grams
        self._exact[key] = text
        return True


def dedupe(texts: Iterable[str], threshold: float = 0.7) -> list[str]:
    """`texts` in order, without exact or near-duplicates of earlier ones."""
    index = NearDuplicateIndex(threshold=threshold)
    return [text for text in texts if index.add(text)]


def leaked_pairs(
    train: Iterable[str], holdout: Iterable[str], threshold: float = 0.7
) -> list[tuple[str, str]]:
    """(hold-out, train) pairs that are the same question or near-duplicates."""
    index = NearDuplicateIndex(threshold=threshold)
    originals: dict[str, str] = {}
    for text in train:
        index.add(text, keep_duplicates=True)
        originals.setdefault(normalise(text), text)
    pairs = []
    for text in holdout:
        match = index.find(text)
        if match is not None:
            pairs.append((text, originals.get(match, match)))
    return pairs
