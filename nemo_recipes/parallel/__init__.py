"""Parallel runtime: process groups, seeds, and the CPU device layer.

Importing this package installs the CPU device layer when CUDA is absent. Every module of ours that
imports megatron.core imports this package first, so megatron-core never sees a CUDA-less torch bare.
"""

from nemo_recipes.parallel import cpu_device

cpu_device.install()
