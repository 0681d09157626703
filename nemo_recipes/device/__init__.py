"""The device layer: what megatron-core needs from the platform, installed before it is first imported.

Importing this package installs the CPU device layer (`cpu.py`) when CUDA is absent; on a GPU it does
nothing. Every module of ours that imports megatron.core imports this package first (a test checks), so
megatron-core never sees a CUDA-less torch bare. It imports nothing of ours: any layer may use it.
"""

from nemo_recipes.device import cpu

cpu.install()
