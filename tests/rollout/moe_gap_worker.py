"""Entry of the MoE gap check (tests.rollout.moe_gap_check), one process.

Usage: python -m tests.rollout.moe_gap_worker OUT_JSON WORK_DIR [ROUTER_SCALE ...]
Light at import on purpose: vLLM's spawned engine processes re-import this module.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    from tests.rollout.moe_gap_check import main

    main(Path(sys.argv[1]), Path(sys.argv[2]), [float(x) for x in sys.argv[3:]])
