"""A one-pass summary of a shower file (what ``caloclouds info`` prints), in constant memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caloclouds.showers import Showers

__all__ = ["ShowerSummary", "cell_hit_lines", "summarise", "summarise_file"]


@dataclass(frozen=True)
class ShowerSummary:
    """Per-file statistics; energies in GeV (incident) and MeV (visible)."""

    n_showers: int
    n_points: int
    incident_energy_gev: tuple[float, float, float]  # min, mean, max
    points_per_shower: tuple[int, float, int]  # min, mean, max
    visible_energy_mev: tuple[float, float, float]  # min, mean, max
    total_visible_mev: float
    conditions: tuple[str, ...]
    theta_deg: tuple[float, float] | None = None  # min, max polar angle of incidence; None: normal incidence
    phi_deg: tuple[float, float] | None = None  # min, max azimuth of incidence

    def direction_line(self) -> str:
        """The angles of incidence: their ranges, or normal incidence (a file without them)."""
        if self.theta_deg is None or self.phi_deg is None:
            return "direction        normal incidence (no theta_deg/phi_deg)"
        (t0, t1), (p0, p1) = self.theta_deg, self.phi_deg
        return f"direction        theta {t0:.2f} - {t1:.2f} deg, phi {p0:.2f} - {p1:.2f} deg"

    def lines(self) -> list[str]:
        """Human-readable lines (label, value)."""
        if self.n_showers == 0:
            return ["showers          0"]
        e, n, v = self.incident_energy_gev, self.points_per_shower, self.visible_energy_mev
        return [
            f"showers          {self.n_showers}",
            f"incident energy  {e[0]:.4g} - {e[2]:.4g} GeV (mean {e[1]:.4g} GeV)",
            f"points           {self.n_points} in total; per shower mean {n[1]:.1f}, min {n[0]}, max {n[2]}",
            f"visible energy   mean {v[1]:.2f} MeV, min {v[0]:.2f} MeV, max {v[2]:.2f} MeV; "
            f"total {self.total_visible_mev:.2f} MeV",
            f"conditions       {', '.join(self.conditions) or '-'}",
            self.direction_line(),
        ]


def summarise(chunks: Iterable[Showers], *, progress: Callable[[int], object] | None = None) -> ShowerSummary:
    """Summarise showers given chunk by chunk (each chunk is reduced, then dropped).

    Args:
        chunks: consecutive :class:`Showers` batches.
        progress: called with the number of showers of each chunk (e.g. ``tqdm.update``).
    """
    n_showers = n_points = 0
    e_min, e_max, e_sum = np.inf, -np.inf, 0.0
    p_min, p_max = np.iinfo(np.int64).max, 0
    v_min, v_max, v_sum = np.inf, -np.inf, 0.0
    conditions: tuple[str, ...] = ()
    angle_lo, angle_hi = np.full(2, np.inf), np.full(2, -np.inf)  # (theta, phi) min and max
    for chunk in chunks:
        if progress is not None:
            progress(len(chunk))
        if len(chunk) == 0:
            continue
        conditions = tuple(sorted(chunk.conditions))
        e, counts, vis = chunk.incident_energy_gev.astype(np.float64), chunk.n_points, chunk.visible_energy_mev()
        n_showers += len(chunk)
        n_points += int(counts.sum())
        e_min, e_max, e_sum = min(e_min, e.min()), max(e_max, e.max()), e_sum + e.sum()
        p_min, p_max = min(p_min, int(counts.min())), max(p_max, int(counts.max()))
        v_min, v_max, v_sum = min(v_min, vis.min()), max(v_max, vis.max()), v_sum + vis.sum()
        if chunk.has_direction:
            angle_lo = np.minimum(angle_lo, [chunk.theta_deg.min(), chunk.phi_deg.min()])
            angle_hi = np.maximum(angle_hi, [chunk.theta_deg.max(), chunk.phi_deg.max()])
    direction = {}
    if np.isfinite(angle_lo).all():
        direction = {name: (float(angle_lo[k]), float(angle_hi[k])) for k, name in enumerate(("theta_deg", "phi_deg"))}
    if n_showers == 0:
        return ShowerSummary(0, 0, (0.0, 0.0, 0.0), (0, 0.0, 0), (0.0, 0.0, 0.0), 0.0, conditions)
    return ShowerSummary(
        n_showers=n_showers,
        n_points=n_points,
        incident_energy_gev=(float(e_min), e_sum / n_showers, float(e_max)),
        points_per_shower=(p_min, n_points / n_showers, p_max),
        visible_energy_mev=(float(v_min), v_sum / n_showers, float(v_max)),
        total_visible_mev=float(v_sum),
        conditions=conditions,
        **direction,
    )


def summarise_file(
    path: str | Path, *, format: str | None = None, progress: Callable[[int], object] | None = None
) -> ShowerSummary:
    """Summarise any file :func:`caloclouds.io.formats.iter_any` reads."""
    from caloclouds.io.formats import iter_any

    return summarise(iter_any(path, format=format), progress=progress)


def cell_hit_lines(path: str | Path) -> list[str]:
    """``info``'s lines about the cell hits a shower file carries next to its points (HDF5 group
    ``cells``, ROOT branches ``n_cells``/``cells_*``, as ``generate --cells`` writes them); none
    where it has none. Reads only the per-shower hit counts and the metadata."""
    path = Path(path)
    if path.suffix.lower() == ".root":
        import uproot

        with uproot.open(path) as f:
            if "events" not in f or "n_cells" not in f["events"].keys():
                return []
            counts = f["events"]["n_cells"].array(library="np").astype(np.int64)
            meta = f["metadata"].arrays(library="np") if "metadata" in f else {}
            attrs = {k: v[0] for k, v in meta.items()}
    else:
        import h5py

        with h5py.File(path, "r") as f:
            if "cells" not in f or "offsets" not in f["cells"]:
                return []
            counts = np.diff(f["cells"]["offsets"][:]).astype(np.int64)
            attrs = dict(f.attrs)
    if len(counts) == 0:
        return []
    geometry = attrs.get("cells", attrs.get("geometry", "?"))
    geometry = geometry.decode() if isinstance(geometry, bytes) else str(geometry)
    mip = attrs.get("cell_threshold_mip")
    cut = f", threshold {float(mip):g} MIP" if mip is not None and np.isfinite(float(mip)) else ""
    return [
        f"cell hits        {int(counts.sum())} in total on {geometry} cells{cut}; per shower mean "
        f"{counts.mean():.1f}, min {counts.min()}, max {counts.max()}"
    ]
