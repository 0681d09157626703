"""The pipeline's errors: `redone run` reports them in one line, without a traceback."""

from __future__ import annotations


class PipelineError(RuntimeError):
    """A unit's command failed, or a unit's outputs are missing (the message names the unit)."""


class UnitNotFinishedError(PipelineError):
    """A unit's outputs were asked for before the unit finished (it has no manifest.json)."""
