"""The local byte-level BPE tokenizer: training it and writing a Hugging Face tokenizer directory."""
