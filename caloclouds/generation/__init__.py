"""The generation pipeline: Shower Flow -> N calibration -> PointWise Net (CM/EDM) -> calibration -> cells."""

from __future__ import annotations
