"""Shipped assets (models, tokenizers, data, task tables) by name, or a path. Torch-free."""

from __future__ import annotations

from pathlib import Path

from nemo_recipes.config.loader import ConfigError

ASSETS = Path(__file__).parent.parent / "assets"


def resolve_asset(name_or_path: str, kind: str) -> Path:
    """A filesystem path, else a shipped asset by name (`assets/<kind>/<name>`): a path you give wins."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    shipped = ASSETS / kind / name_or_path
    if shipped.exists():
        return shipped
    known = sorted(p.name for p in (ASSETS / kind).iterdir()) if (ASSETS / kind).is_dir() else []
    raise ConfigError(f"{kind} {name_or_path!r}: neither a path nor a shipped {kind} (shipped: {known})")
