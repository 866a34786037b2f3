"""The error raised for bad projection input (NaN points, layers outside the geometry, bad names)."""

from __future__ import annotations

from caloclouds.errors import CaloCloudsError

__all__ = ["ProjectionError", "ProjectionLossWarning"]


class ProjectionError(CaloCloudsError, ValueError):
    """Input that cannot be projected; the message names the argument, the value and what is allowed."""


class ProjectionLossWarning(UserWarning):
    """More than :data:`projection.files.LOSS_WARNING_FRACTION` of the input energy reached no cell;
    the message names the cause (layers the layer map drops, or gaps and edges of the geometry)."""
