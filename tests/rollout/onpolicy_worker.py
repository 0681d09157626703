"""Entry of the on-policy check (tests.rollout.onpolicy_check), one process or under torchrun.

Usage: python [-m torch.distributed.run --nproc-per-node=N] -m tests.rollout.onpolicy_worker
OUT_JSON WORK_DIR TP,PP [TP,PP ...]
Light at import on purpose: vLLM's spawned engine processes re-import this module, and must not
pull in megatron-core and the CPU device layer with it.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    from tests.rollout.onpolicy_check import main

    layouts = [tuple(int(x) for x in layout.split(",")) for layout in sys.argv[3:]]
    main(Path(sys.argv[1]), Path(sys.argv[2]), layouts)
