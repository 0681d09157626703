"""Parallel runtime: process groups, ranks and seeds over megatron-core (`distributed.py`).

Importing it installs the device layer (`nemo_recipes.device`) first, as every megatron user must.
"""

import nemo_recipes.device  # noqa: F401  (CPU device layer before megatron.core)
