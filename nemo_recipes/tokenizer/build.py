"""Train the small local byte-level BPE tokenizer and write it as a Hugging Face tokenizer directory.

The directory loads offline with ``transformers.AutoTokenizer.from_pretrained(dir)``. It carries a
ChatML chat template in the style of Qwen (``<|im_start|>role\\ncontent<|im_end|>\\n``) whose
assistant content is wrapped in ``{% generation %}`` so ``return_assistant_tokens_mask`` works.

The tokenizer is lossless: no normaliser, byte-level pre-tokenisation (any UTF-8 text, Chinese and
emoji included, round-trips), digits split one per token as in Qwen2. Usage::

    python -m nemo_recipes.tokenizer.build --out nemo_recipes/assets/tokenizer/tiny
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from nemo_recipes.records.chat import read_chat_records

ENDOFTEXT_TOKEN = "<|endoftext|>"
IM_START_TOKEN = "<|im_start|>"
IM_END_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT_TOKEN, IM_START_TOKEN, IM_END_TOKEN)
# Generation stops at the end of an assistant turn; padding uses the document separator.
EOS_TOKEN = IM_END_TOKEN
PAD_TOKEN = ENDOFTEXT_TOKEN
MODEL_MAX_LENGTH = 32768
MIN_PAIR_FREQUENCY = 2

# Qwen2's pre-tokeniser split: words with an optional leading non-letter, single digits, punctuation
# runs, newline runs, other whitespace.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

DEFAULT_CORPUS_DIR = Path(__file__).resolve().parent.parent / "assets" / "data" / "toy_chat"
DEFAULT_CORPUS_FILES = (DEFAULT_CORPUS_DIR / "train.jsonl", DEFAULT_CORPUS_DIR / "valid.jsonl")


def build_tokenizer(corpus_files: list[Path], out_dir: Path, vocab_size: int = 2048) -> Path:
    """Train a byte-level BPE on ``corpus_files`` and save a HF tokenizer directory to ``out_dir``.

    ``.jsonl`` files are read as chat records (role names and message contents are the training
    text); ``.txt`` files are read line by line. ``vocab_size`` is an upper bound including the 256
    byte tokens and the special tokens: a small corpus runs out of pairs seen at least twice first.
    Training is deterministic for the same files. Returns ``out_dir``.
    """
    minimum_vocab_size = 256 + len(SPECIAL_TOKENS)
    if vocab_size < minimum_vocab_size:
        raise ValueError(
            f"vocab_size must be >= {minimum_vocab_size} (bytes + special tokens), got {vocab_size}"
        )
    if not corpus_files:
        raise ValueError("corpus_files is empty")
    tokenizer = _untrained_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_PAIR_FREQUENCY,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus_texts([Path(file) for file in corpus_files]), trainer=trainer)
    out_dir = Path(out_dir)
    _save_hf_directory(tokenizer, out_dir)
    return out_dir


def _untrained_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps character offsets exact, which the assistant-token mask relies on.
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _corpus_texts(corpus_files: list[Path]) -> Iterator[str]:
    for path in corpus_files:
        if path.suffix == ".jsonl":
            for record in read_chat_records(path, on_error="raise").records:
                for message in record.messages:
                    yield f"{message.role}\n{message.content}"
        elif path.suffix == ".txt":
            with path.open(encoding="utf-8") as handle:
                yield from handle
        else:
            raise ValueError(f"corpus file {path} must end in .jsonl (chat records) or .txt (plain text)")


def _save_hf_directory(tokenizer: Tokenizer, out_dir: Path) -> None:
    """Write tokenizer.json and a tokenizer_config.json holding the special tokens and the template."""
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START_TOKEN],
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )
    hf_tokenizer.chat_template = CHATML_TEMPLATE
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tokenizer.save_pretrained(str(out_dir))
    _make_config_portable(out_dir)


def _make_config_portable(out_dir: Path) -> None:
    """Keep the template inside tokenizer_config.json and name the generic fast-tokenizer class.

    Older transformers releases (and tools that read the config themselves) know neither the
    separate ``chat_template.jinja`` file nor the v5 class name ``TokenizersBackend``.
    """
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["chat_template"] = CHATML_TEMPLATE
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True) + "\n", "utf-8")
    jinja_path = out_dir / "chat_template.jinja"
    if jinja_path.exists():
        jinja_path.unlink()


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m nemo_recipes.tokenizer.build --out DIR [--corpus FILE ...] [--vocab-size N]``."""
    parser = argparse.ArgumentParser(description="Train the local byte-level BPE tokenizer.")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--corpus",
        type=Path,
        nargs="+",
        default=list(DEFAULT_CORPUS_FILES),
        help="corpus files (.jsonl chat records or .txt); default: the shipped toy chat data",
    )
    parser.add_argument("--vocab-size", type=int, default=2048)
    args = parser.parse_args(argv)
    out_dir = build_tokenizer(args.corpus, args.out, vocab_size=args.vocab_size)
    vocab_size = Tokenizer.from_file(str(out_dir / "tokenizer.json")).get_vocab_size()
    print(f"wrote tokenizer with {vocab_size} tokens to {out_dir}")


if __name__ == "__main__":
    main()
