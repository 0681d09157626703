"""Normalisation (stored text) and exact / near dedup, measured on real text with injected copies."""

from __future__ import annotations

import numpy as np

from data_prep.documents import Doc
from data_prep.report import StepStats
from data_prep.steps.exact_dedup import ExactDedup, ExactDedupConfig
from data_prep.steps.near_dedup import NearDedup, NearDedupConfig, candidate_pairs, cluster_duplicates
from data_prep.steps.normalize import Normalize, NormalizeConfig
from data_prep.text_keys import match_key, shingles, tokens
from tests.data_prep.corpus import corpus_with_near_duplicates, true_similarity


def _docs(texts):
    return [Doc(str(i), t, f"x:{i}", {}) for i, t in enumerate(texts)]


def _normalized(text, **kw):
    doc = _docs([text])[0]
    reason = Normalize(NormalizeConfig(**kw)).apply(doc, StepStats("n"))
    return doc.text, reason


def test_normalize_keeps_chinese_punctuation_and_emoji_and_repairs_mojibake():
    text = "  “真的绝了”，这家店！！\u3000\u3000推荐👨‍👩‍👧\x07  \n\n\n\n下次还来  "
    assert _normalized(text) == ("“真的绝了”，这家店！！ 推荐👨‍👩‍👧\n\n下次还来", None)
    mojibake = "今天很开心，推荐！".encode().decode("latin-1")  # UTF-8 bytes read as Latin-1
    assert _normalized(mojibake)[0] == "今天很开心，推荐！"
    assert _normalized("cafÃ© naÃ¯ve")[0] == "café naïve"
    assert _normalized("ｅ＝ｍｃ２", unicode_form="NFKC")[0] == "e=mc2"
    assert _normalized(" \x00 \t ") == ("", "empty_after_normalize")


def test_match_key_and_cjk_tokens():
    assert match_key("好吃！！ 下次 还来～") == match_key("好吃!下次还来") == "好吃下次还来"
    assert tokens("我爱New York 2024🍎！") == ["我", "爱", "new", "york", "2024", "🍎"]
    assert shingles("好吃好吃", 2) == {"好 吃", "吃 好"}
    assert shingles("好", 3) == {"好"}


def test_exact_dedup_keeps_the_first_across_shards():
    step = ExactDedup(ExactDedupConfig())
    shard_a = step.signatures(_docs(["好吃！！", "😂", "different"]))
    shard_b = step.signatures(_docs(["👍", "好吃!", "Different."]))
    drops = step.decide([shard_a, shard_b], StepStats("e"))
    assert drops == [{}, {1: "exact_duplicate", 2: "exact_duplicate"}]  # emoji-only posts stay apart
    raw = ExactDedup(ExactDedupConfig(key="text"))
    assert raw.decide([raw.signatures(_docs(["好吃！！", "好吃!", "好吃!"]))], StepStats("e")) == [
        {2: "exact_duplicate"}
    ]


def test_banding_and_clusters_by_hand():
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 5, 5, 5]], dtype=np.uint32)
    assert candidate_pairs(sig, bands=2).tolist() == [[0, 1], [0, 2]]
    assert candidate_pairs(sig, bands=1).tolist() == []
    assert cluster_duplicates(5, np.array([[0, 1], [3, 4], [1, 3]])).tolist() == [
        False,
        True,
        False,
        True,
        True,
    ]


def test_near_dedup_precision_and_recall_on_real_posts():
    """2,400 real zh/en posts + 600 SNS-style near copies. Truth for recall: copies whose true Jaccard
    (2-token shingles) with their original is >= 0.7. A dropped post is correct if it is a copy, or an
    original whose true Jaccard with some other post is >= 0.7 (the sources hold real near duplicates)."""
    texts, origin = corpus_with_near_duplicates(2400, 600, seed=0)
    step = NearDedup(NearDedupConfig())
    sig = step.signatures(_docs(texts))
    half = len(texts) // 2  # two shards
    stats = StepStats("near")
    drops = step.decide([sig[:half], sig[half:]], stats)
    dropped = set(drops[0]) | {half + r for r in drops[1]}
    copies = [i for i, o in enumerate(origin) if o is not None]
    near = [i for i in copies if true_similarity(texts[i], texts[origin[i]], 2) >= 0.7]
    recall = np.mean([i in dropped for i in near])

    def correct(i):
        if origin[i] is not None:
            return True
        return any(true_similarity(texts[i], texts[j], 2) >= 0.7 for j in range(len(texts)) if j != i)

    precision = np.mean([correct(i) for i in dropped])
    print(
        f"near dedup: dropped {len(dropped)}, precision {precision:.3f}, "
        f"recall {recall:.3f} ({len(near)} copies)"
    )
    assert recall >= 0.97
    assert precision >= 0.99
    assert stats.counters["verified_pairs"] <= stats.counters["candidate_pairs"]
    # Without verification the same bands over-merge: precision must drop, showing verification matters.
    loose = NearDedup(NearDedupConfig(verify_threshold=None))
    loose_dropped = set(loose.decide([sig], StepStats("l"))[0])
    assert len(loose_dropped) > len(dropped)
