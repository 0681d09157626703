"""Layered config loading: code defaults <- YAML recipe <- `--set dotted.key=value`, validated once.

Torch-free. Errors name the layer that set the bad key (file and line, or the `--set` argument), the
dotted key path, the value, and what is allowed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, frozen=False, use_attribute_docstrings=True
    )


class ConfigError(ValueError):
    """A config problem, with where it came from."""


def _yaml_with_lines(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse a YAML mapping and record the line of every dotted key."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config sections")
    lines: dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                dotted = f"{prefix}{key_node.value}"
                lines[dotted] = key_node.start_mark.line + 1
                walk(value_node, dotted + ".")

    walk(node, "")
    return data, lines


def parse_override(arg: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a","b","c"], value parsed as YAML scalar/list/mapping)."""
    if "=" not in arg:
        raise ConfigError(f"--set {arg!r}: expected dotted.key=value")
    key, raw = arg.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {arg!r}: empty key segment in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {arg!r}: value is not valid YAML: {e}") from e
    return parts, value


def _set_dotted(tree: dict[str, Any], parts: list[str], value: Any, where: str) -> None:
    node = tree
    for i, p in enumerate(parts[:-1]):
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(parts[: i + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _walk(schema: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """The section type at `loc[:-1]` (None where it cannot be told) and `loc` without union tags."""
    model: Any = schema
    shown = []
    for part in loc[:-1]:
        if model is None:
            shown.append(part)
            continue
        model, is_tag = _child(model, part)
        if not is_tag:
            shown.append(part)
    return model, (*shown, loc[-1])


def _child(tp: Any, part: Any) -> tuple[Any, bool]:
    """The type that `part` of a location leads into from `tp`, and whether `part` is a union tag."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(part)
        return (_child_type(field.annotation) if field else None), False
    if get_origin(tp) in (dict, list, tuple, set):
        return _child_type(get_args(tp)[-1]), False
    members = [a for a in get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
    for member in members:  # a discriminated union: pydantic puts the tag in the location
        tags = [f.default for f in member.model_fields.values() if get_origin(f.annotation) is Literal]
        if part in tags:
            return member, True
    return None, False


def _child_type(annotation: Any) -> Any:
    """A field's type without Annotated / Optional wrappers."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _format_errors(e: ValidationError, schema: type[BaseModel], sources: dict[str, str]) -> str:
    msgs = []
    for err in e.errors():
        section, loc = _walk(schema, tuple(err["loc"]))
        dotted = ".".join(str(p) for p in loc)
        where = _source_of(dotted, sources)
        if err["type"] == "extra_forbidden":
            allowed = sorted(getattr(section, "model_fields", {}).keys())
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            msg = f"{where}: unknown key '{dotted}'"
            if hint:
                msg += f" (did you mean '{hint[0]}'?)"
            msg += f"; allowed here: {', '.join(allowed)}"
        elif err["type"] == "union_tag_invalid":
            msg = _unknown_tag(err["ctx"], dotted, sources)
        else:
            value = err.get("input")
            msg = f"{where}: {dotted} = {value!r}: {err['msg']}"
            if err.get("ctx", {}).get("expected"):
                msg += f" (allowed: {err['ctx']['expected']})"
        msgs.append(msg)
    return "invalid config:\n  " + "\n  ".join(msgs)


def _unknown_tag(ctx: dict[str, Any], dotted: str, sources: dict[str, str]) -> str:
    """A tagged union's tag (`kind: exact_mach`) that names no member: its own line, a did-you-mean."""
    key = f"{dotted}.{ctx['discriminator'].strip(chr(39))}"
    allowed = [tag.strip().strip("'") for tag in ctx["expected_tags"].split(",")]
    hint = difflib.get_close_matches(str(ctx["tag"]), allowed, n=1)
    msg = f"{_source_of(key, sources)}: {key} = {ctx['tag']!r} is unknown"
    if hint:
        msg += f" (did you mean '{hint[0]}'?)"
    return f"{msg}; allowed: {', '.join(allowed)}"


def _source_of(dotted: str, sources: dict[str, str]) -> str:
    """The most specific layer that set `dotted` or one of its parents."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in sources:
            return sources[key]
    return "defaults"


def load_config(schema: type[M], recipe: Path | None = None, overrides: list[str] | None = None) -> M:
    """Merge code defaults, an optional YAML recipe and `--set` overrides, then validate once."""
    tree: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if recipe is not None:
        recipe = Path(recipe)
        if not recipe.is_file():
            raise ConfigError(f"{recipe}: recipe file not found")
        tree, lines = _yaml_with_lines(recipe)
        sources = {k: f"{recipe}:{line}" for k, line in lines.items()}
    for arg in overrides or []:
        parts, value = parse_override(arg)
        _set_dotted(tree, parts, value, f"--set {arg}")
        sources[".".join(parts)] = f"--set {arg}"
    _refuse_renamed_keys(tree, getattr(schema, "renamed_keys", {}), sources)
    try:
        return schema.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, schema, sources)) from None


def _refuse_renamed_keys(tree: dict[str, Any], renamed: dict[str, str], sources: dict[str, str]) -> None:
    """Keys of an earlier version are errors naming where each setting lives now (all listed at once).

    `renamed` maps an old dotted key to its new key, or to a parenthesised note when it is gone.
    """
    found = []
    for old, new in renamed.items():
        if _has_dotted(tree, old.split(".")):
            now = new if new.startswith("(") else f"is now '{new}'"
            found.append(f"{_source_of(old, sources)}: '{old}' {now}")
    if found:
        raise ConfigError("config keys of an earlier version:\n  " + "\n  ".join(found))


def _has_dotted(tree: Any, parts: list[str]) -> bool:
    for part in parts:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def dump_config(cfg: BaseModel, path: Path) -> None:
    """Write the resolved config (every field, defaults included) as YAML."""
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def config_hash(cfg: BaseModel | dict) -> str:
    """A short digest of a resolved config (every field, defaults included)."""
    tree = cfg if isinstance(cfg, dict) else cfg.model_dump(mode="json")
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]
