"""`redone config --explain`: every field of the run config with its type, default, recipe value and doc.

Torch-free. Defaults are read from a default-constructed tree, so a section whose defaults depend on
where it sits (`eval.generation` vs `grpo.generation`) shows its own.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def field_rows(
    cfg: BaseModel, default: BaseModel, prefix: str = ""
) -> Iterator[tuple[str, FieldInfo, Any, Any]]:
    """(dotted key, field, default value, value) for every leaf field under `cfg`, in declaration order."""
    for name, field in type(cfg).model_fields.items():
        value, base = getattr(cfg, name), getattr(default, name)
        if isinstance(value, BaseModel):
            yield from field_rows(value, base, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field, base, value


def _type_name(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("pathlib.", "")
    text = re.sub(r"Annotated\[(\w+), [^\]]*\]", r"\1", text)
    text = re.sub(r"^Optional\[(.*)\]$", r"\1 | None", text)
    return text.removeprefix("<class '").removesuffix("'>")


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def explain(cfg: BaseModel, default: BaseModel) -> str:
    """One entry per field: `key (type) = default`, the recipe's value when it differs, the docstring."""
    out = []
    for key, field, base, value in field_rows(cfg, default):
        line = f"{key} ({_type_name(field)}) = {_shown(base)}"
        if value != base:
            line += f"   recipe: {_shown(value)}"
        doc = textwrap.fill(
            " ".join((field.description or "").split()), 100, initial_indent="    ", subsequent_indent="    "
        )
        out.append(f"{line}\n{doc}" if doc else line)
    return "\n".join(out) + "\n"
