"""The error raised for bad projection input (NaN points, layers outside the geometry, bad names)."""

from __future__ import annotations

from caloclouds.errors import CaloCloudsError

__all__ = ["ProjectionError"]


class ProjectionError(CaloCloudsError, ValueError):
    """Input that cannot be projected; the message names the argument, the value and what is allowed."""
