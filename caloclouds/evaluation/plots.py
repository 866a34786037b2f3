"""Geant4-vs-model histograms with ratio panels (the style of CaloClouds II Figs. 3-5).

Histograms are filled with ``hist`` (boost-histogram, weighted storage: the errors are the square
roots of the summed squared weights) and drawn with ``mplhep.histplot`` in mplhep's neutral ROOT
style. Each panel shows the reference as a filled grey histogram and each sample as a line; below
it, the ratio sample / reference with the reference's statistical uncertainty as a grey band and
the sample's as error bars; a ratio outside the panel's range is drawn as an arrow at the edge,
pointing the way it left. Every figure carries a neutral detector label (``ILD-like`` for the ILD
cells, else the geometry's name), never an experiment's. hist, mplhep and matplotlib are imported
inside the functions, and figures are built without pyplot (no backend switch, no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.evaluation.observables import BinEdges, CellObservables, binned_energies

__all__ = ["Curve", "angle_figure", "histogram", "detector_label", "plot_all"]

REFERENCE_COLOUR = "0.75"
MODEL_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
RATIO_LIMITS = (0.5, 1.5)
_DPI = 110
#: Neutral detector labels of the named geometries (anything else is labelled by its own name).
DETECTOR_LABELS = {"ild": "ILD-like", "ild-real": "ILD-like", "hgcal": "HGCal-like"}


@dataclass(frozen=True)
class Curve:
    """A histogram normalised per shower, with its statistical error, for one sample."""

    label: str
    values: np.ndarray  # (B,) height of each bin
    errors: np.ndarray  # (B,) statistical error of each height


def detector_label(geometry: str) -> str:
    """``"ILD-like"`` for the ILD cells, else the geometry spec itself."""
    return DETECTOR_LABELS.get(geometry, geometry)


def histogram(
    label: str,
    values: np.ndarray,
    edges: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    n_showers: int,
    per_width: bool = True,
    clip: bool = True,
) -> Curve:
    """A ``hist`` histogram of ``values`` (weighted), divided by the number of showers (and bin width).

    Args:
        label: name of the sample.
        values: (K,) values to fill.
        edges: (B+1,) bin edges.
        weights: optional (K,) weights (e.g. cell energies).
        n_showers: showers the values come from (the per-shower normalisation).
        per_width: also divide by the bin width (a density).
        clip: put values outside the edges into the first and last bin.
    """
    import hist

    h = hist.Hist(hist.axis.Variable(np.asarray(edges, dtype=np.float64), flow=False), storage=hist.storage.Weight())
    x = np.asarray(values, dtype=np.float64)
    if clip:
        x = np.clip(x, edges[0], np.nextafter(edges[-1], -np.inf))
    h.fill(x, weight=None if weights is None else np.asarray(weights, dtype=np.float64))
    norm = max(n_showers, 1) * (np.diff(edges) if per_width else 1.0)
    return Curve(label, h.values() / norm, np.sqrt(h.variances()) / norm)


def _per_shower_profile(
    label: str, bins: np.ndarray, weights: np.ndarray, shower: np.ndarray, n_showers: int, n_bins: int
) -> Curve:
    """Mean over showers of the summed weight per bin, and the standard error of that mean."""
    import hist

    h = hist.Hist(hist.axis.Integer(0, n_showers, flow=False), hist.axis.Integer(0, n_bins, flow=False))
    h.fill(shower, bins, weight=weights)
    sums = h.values()
    return Curve(label, sums.mean(0), sums.std(0) / np.sqrt(max(n_showers, 1)))


def _style() -> Any:
    """mplhep's ROOT style (neutral: no experiment's fonts or label)."""
    import matplotlib.style
    import mplhep

    return matplotlib.style.context(mplhep.style.ROOT)


def _label(ax: Any, detector: str) -> None:
    import mplhep

    mplhep.label.exp_text(detector, "Simulation", loc=0, ax=ax, fontsize=9)


def _ratio_arrows(rax: Any, centres: np.ndarray, ratio: np.ndarray, colour: str) -> None:
    """Arrows at the edge of the ratio panel for ratios outside it (up: above, down: below)."""
    lo, hi = RATIO_LIMITS
    inset = 0.08 * (hi - lo)
    for mask, y, marker in ((ratio > hi, hi - inset, r"$\uparrow$"), (ratio < lo, lo + inset, r"$\downarrow$")):
        if mask.any():
            rax.plot(centres[mask], np.full(mask.sum(), y), linestyle="none", marker=marker, markersize=9, color=colour)


def _panel(
    ax: Any,
    rax: Any,
    edges: np.ndarray,
    curves: Sequence[Curve],
    *,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    legend: bool = False,
    detector: str = "",
) -> None:
    """Draw one histogram panel and its ratio panel."""
    import mplhep

    ref, models = curves[0], curves[1:]
    mplhep.histplot(ref.values, edges, ax=ax, histtype="fill", color=REFERENCE_COLOUR, label=ref.label)
    mplhep.histplot(ref.values, edges, ax=ax, histtype="step", color="0.45", linewidth=0.8)
    for i, c in enumerate(models):
        mplhep.histplot(
            c.values,
            edges,
            ax=ax,
            histtype="step",
            color=MODEL_COLOURS[i % len(MODEL_COLOURS)],
            linewidth=1.6,
            label=c.label,
        )
    centres = np.sqrt(edges[1:] * edges[:-1]) if logx else 0.5 * (edges[1:] + edges[:-1])
    safe = np.where(ref.values > 0, ref.values, np.nan)
    rel = ref.errors / safe
    rax.stairs(
        1 + np.nan_to_num(rel), edges, baseline=1 - np.nan_to_num(rel), fill=True, color=REFERENCE_COLOUR, alpha=0.8
    )
    rax.axhline(1.0, color="0.3", linewidth=0.8)
    lo, hi = RATIO_LIMITS
    for i, c in enumerate(models):
        colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
        ratio = c.values / safe
        inside = (ratio >= lo) & (ratio <= hi)
        rax.errorbar(
            centres[inside],
            ratio[inside],
            yerr=(c.errors / safe)[inside],
            fmt="o",
            markersize=2.5,
            color=colour,
            elinewidth=0.8,
            linewidth=0,
        )
        _ratio_arrows(rax, centres, np.nan_to_num(ratio, nan=1.0), colour)
    rax.set_ylim(lo, hi)
    rax.set_ylabel(f"model / {ref.label}" if len(ref.label) < 8 else "ratio", fontsize=8)
    rax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_xlabel("")
    from matplotlib.ticker import MaxNLocator

    for a in (ax, rax):
        a.set_xlim(edges[0], edges[-1])
        if logx:
            a.set_xscale("log")
        else:
            a.xaxis.set_major_locator(MaxNLocator(5))
        a.tick_params(labelsize=8)
    rax.yaxis.set_major_locator(MaxNLocator(3))
    if logy:
        ax.set_yscale("log")
    ax.tick_params(labelbottom=False)
    if detector:
        _label(ax, detector)
    if legend:
        ax.legend(fontsize=8, frameon=True, framealpha=0.9, edgecolor="0.8")


def _figure(n_panels: int, n_cols: int, width_in: float = 4.2) -> tuple[Any, list[tuple[Any, Any]]]:
    """A figure of ``n_panels`` (main, ratio) axis pairs on a grid of ``n_cols`` columns."""
    from matplotlib.figure import Figure

    n_rows = (n_panels + n_cols - 1) // n_cols
    height_in = 3.9 * n_rows + 0.5
    fig = Figure(figsize=(width_in * n_cols, height_in))  # no pyplot: no backend or global figure
    outer = fig.add_gridspec(
        n_rows,
        n_cols,
        left=0.75 / (width_in * n_cols),
        right=1 - 0.15 / (width_in * n_cols),
        bottom=0.55 / height_in,
        top=1 - 0.5 / height_in,
        hspace=0.3,
        wspace=0.32,
    )
    axes = []
    for p in range(n_panels):
        inner = outer[divmod(p, n_cols)].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(inner[0])
        rax = fig.add_subplot(inner[1], sharex=ax)
        axes.append((ax, rax))
    return fig, axes


def _n_bins(n_showers: int) -> int:
    """Histogram bins for a per-shower observable: about 2 N^(1/3), between 10 and 50."""
    return int(np.clip(round(2 * n_showers ** (1 / 3)), 10, 50))


def _range(arrays: Sequence[np.ndarray], lo_q: float = 0.002, hi_q: float = 0.998) -> tuple[float, float]:
    ref = arrays[0]
    lo, hi = np.quantile(ref, [lo_q, hi_q]) if len(ref) else (0.0, 1.0)
    pad = 0.15 * (hi - lo) if hi > lo else 1.0
    floor = 0.0 if len(ref) and ref.min() >= 0 else -np.inf  # non-negative observables stay >= 0
    return float(max(lo - pad, floor)), float(hi + pad)


def _scalar_panels(
    path: Path,
    samples: Mapping[str, CellObservables],
    specs: Sequence[tuple[str, str, Any]],
    title: str,
    *,
    n_cols: int = 3,
    detector: str = "",
) -> None:
    """One figure of density histograms of per-shower scalars: specs = (name, xlabel, getter)."""
    fig, axes = _figure(len(specs), n_cols)
    n_bins = _n_bins(len(next(iter(samples.values()))))
    for p, ((name, xlabel, getter), (ax, rax)) in enumerate(zip(specs, axes)):
        arrays = [np.asarray(getter(o), dtype=np.float64) for o in samples.values()]
        lo, hi = _range(arrays)
        if name == "n_hits":
            step = max(1.0, np.ceil((hi - lo) / n_bins))
            edges = np.arange(np.floor(max(lo, 0)) - 0.5, hi + step, step)
        else:
            edges = np.linspace(lo, hi, n_bins + 1)
        curves = [histogram(label, a, edges, n_showers=len(a)) for label, a in zip(samples, arrays)]
        _panel(
            ax,
            rax,
            edges,
            curves,
            xlabel=xlabel,
            ylabel="showers (normalised)",
            legend=p == 0,
            detector=detector if p == 0 else "",
        )
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=_DPI)


def _energy_figure(path: Path, samples: Mapping[str, CellObservables], threshold_mev: float, detector: str) -> None:
    fig, axes = _figure(3, 3)
    # cell-energy spectrum: hits per shower per bin, log-log
    lo = max(threshold_mev * 0.8, 1e-3)
    hi = max(float(o.hit_e_mev.max()) for o in samples.values() if len(o.hit_e_mev)) * 1.2
    edges = np.geomspace(lo, hi, 51)
    curves = [
        histogram(label, o.hit_e_mev, edges, n_showers=len(o), per_width=False, clip=False)
        for label, o in samples.items()
    ]
    ax, rax = axes[0]
    _panel(
        ax,
        rax,
        edges,
        curves,
        xlabel="cell energy [MeV]",
        ylabel="hits per shower",
        logx=True,
        logy=True,
        legend=True,
        detector=detector,
    )
    ax.axvline(threshold_mev, color="k", linestyle="--", linewidth=0.8)
    ax.text(threshold_mev * 1.1, ax.get_ylim()[0] * 3, "threshold", fontsize=7, rotation=90)
    for (name, xlabel, getter), (ax, rax) in zip(
        [
            ("n_hits", "number of hits", lambda o: o.n_hits),
            ("e_ratio", r"$E_\mathrm{vis} / E_\mathrm{inc}$", lambda o: o.e_ratio),
        ],
        axes[1:],
    ):
        arrays = [np.asarray(getter(o), dtype=np.float64) for o in samples.values()]
        a_lo, a_hi = _range(arrays)
        edges = np.linspace(max(a_lo, 0.0), a_hi, _n_bins(len(arrays[0])) + 1)
        _panel(
            ax,
            rax,
            edges,
            [histogram(lab, a, edges, n_showers=len(a)) for lab, a in zip(samples, arrays)],
            xlabel=xlabel,
            ylabel="showers (normalised)",
        )
    fig.suptitle("Cell energies, number of hits and visible energy", fontsize=11)
    fig.savefig(path, dpi=_DPI)


def _incident_energy_figure(path: Path, samples: Mapping[str, CellObservables], detector: str) -> None:
    """The incident-energy spectra of all samples (they should match: see the KS check)."""
    fig, axes = _figure(1, 1, width_in=5.5)
    energies = [np.asarray(o.incident_energy_gev, dtype=np.float64) for o in samples.values()]
    lo = min(float(e.min()) for e in energies)
    hi = max(float(e.max()) for e in energies)
    edges = np.linspace(np.floor(lo), np.ceil(hi) + (1.0 if hi == lo else 0.0), _n_bins(len(energies[0])) + 1)
    ax, rax = axes[0]
    _panel(
        ax,
        rax,
        edges,
        [histogram(lab, e, edges, n_showers=len(e)) for lab, e in zip(samples, energies)],
        xlabel="incident energy [GeV]",
        ylabel="showers (normalised)",
        legend=True,
        detector=detector,
    )
    fig.suptitle("Incident-energy spectra", fontsize=11)
    fig.savefig(path, dpi=_DPI)


def angle_figure(path: Path, samples: Mapping[str, CellObservables], detector: str = "") -> None:
    """The distributions of theta and phi (modulo 360) of samples with a direction of incidence."""
    angles = [
        ("theta", "polar angle theta [deg]", lambda o: o.theta_deg),
        ("phi", "azimuth phi [deg], modulo 360", lambda o: np.mod(o.phi_deg, 360.0)),
    ]
    _scalar_panels(path, samples, angles, "Angles of incidence", n_cols=2, detector=detector)


def _radial_edges(r_mm: np.ndarray, n_bins: int = 40) -> np.ndarray:
    """About ``n_bins`` radius bins whose edges lie half-way between distinct cell radii.

    Cell centres sit at a discrete set of radii, so equal-width bins would alias (some bins
    empty, others holding two rings). Edges are taken from the midpoints nearest to an even
    spacing up to the 99.5 % quantile of the reference radii.
    """
    if len(r_mm) == 0:
        return np.linspace(0.0, 100.0, n_bins + 1)
    r_max = float(np.quantile(r_mm, 0.995)) * 1.2
    radii = np.unique(r_mm[r_mm <= r_max])
    if len(radii) < 2 * n_bins:  # few distinct radii: one bin per ring
        mids = 0.5 * (radii[1:] + radii[:-1])
        return np.concatenate([[0.0], mids, [radii[-1] + (radii[-1] - mids[-1] if len(mids) else 1.0)]])
    mids = 0.5 * (radii[1:] + radii[:-1])
    idx = np.unique(np.abs(mids[None, :] - np.linspace(0, r_max, n_bins + 1)[1:, None]).argmin(1))
    return np.concatenate([[0.0], mids[idx]])


def _profile_figure(path: Path, samples: Mapping[str, CellObservables], edges: BinEdges, detector: str) -> None:
    fig, axes = _figure(2, 2, width_in=5.5)
    ref = next(iter(samples.values()))
    n_layers = ref.n_layers
    layer_edges = np.arange(n_layers + 1) - 0.5
    curves = [
        _per_shower_profile(label, o.hit_layer, o.hit_e_mev, o.hit_shower, len(o), n_layers)
        for label, o in samples.items()
    ]
    ax, rax = axes[0]
    _panel(
        ax,
        rax,
        layer_edges,
        curves,
        xlabel="layer",
        ylabel="mean energy per layer [MeV]",
        logy=True,
        legend=True,
        detector=detector,
    )
    for e in edges.layer[1:-1]:
        ax.axvline(e - 0.5, color="0.6", linestyle=":", linewidth=0.7)
    r_edges = _radial_edges(ref.hit_r_mm)
    r_max = r_edges[-1]
    width = np.diff(r_edges)
    curves = []
    for label, o in samples.items():
        bins = np.searchsorted(r_edges, o.hit_r_mm, side="right") - 1
        c = _per_shower_profile(label, bins, o.hit_e_mev, o.hit_shower, len(o), len(r_edges) - 1)
        curves.append(Curve(label, c.values / width, c.errors / width))
    ax, rax = axes[1]
    _panel(
        ax,
        rax,
        r_edges,
        curves,
        xlabel="radius about the shower axis [mm]",
        ylabel="mean dE/dr per shower [MeV/mm]",
        logy=True,
    )
    for e in edges.radius_mm[1:-1]:
        if e < r_max:
            ax.axvline(e, color="0.6", linestyle=":", linewidth=0.7)
    fig.suptitle("Longitudinal and radial profiles (dotted: decile bin edges)", fontsize=11)
    fig.savefig(path, dpi=_DPI)


def _bin_label(edge: np.ndarray, k: int, unit: str) -> str:
    if unit == "layers":
        lo, hi = int(edge[k]), int(edge[k + 1]) - 1
        return f"E in layer {lo} [MeV]" if lo == hi else f"E in layers {lo}-{hi} [MeV]"
    hi = "inf" if not np.isfinite(edge[k + 1]) else f"{edge[k + 1]:.1f}"
    return f"E in r = {edge[k]:.1f}-{hi} mm [MeV]"


def plot_all(
    out_dir: Path,
    reference: CellObservables,
    generated: Mapping[str, CellObservables],
    edges: BinEdges,
    *,
    reference_label: str = "Geant4",
    threshold_mev: float,
    geometry: str = "ild",
) -> list[tuple[str, str]]:
    """Draw every observable; returns ``(title, file name)`` of each PNG written to ``out_dir``.

    Args:
        out_dir: folder of the PNGs.
        reference: observables of the reference (drawn as the grey histogram).
        generated: label -> observables of each other sample.
        edges: the decile bin edges.
        reference_label: legend name of the reference.
        threshold_mev: the cell threshold (marked on the cell-energy spectrum).
        geometry: the evaluation geometry, for the neutral detector label (:func:`detector_label`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = {reference_label: reference, **generated}
    detector = detector_label(geometry)
    written = []
    with _style():
        _incident_energy_figure(out_dir / "eval_incident_energy.png", samples, detector)
        written.append(("Incident-energy spectra", "eval_incident_energy.png"))
        if all(o.has_direction for o in samples.values()):  # angled samples: their angles should match too
            angle_figure(out_dir / "eval_angles.png", samples, detector)
            written.append(("Angles of incidence", "eval_angles.png"))
        _energy_figure(out_dir / "eval_energy.png", samples, threshold_mev, detector)
        written.append(("Cell energies, hits, visible energy", "eval_energy.png"))
        _profile_figure(out_dir / "eval_profiles.png", samples, edges, detector)
        written.append(("Longitudinal and radial profiles", "eval_profiles.png"))
        cog = [
            (f"cog_{c}", f"centre of gravity {c} [mm]", (lambda o, j=j: o.cog_mm[:, j])) for j, c in enumerate("xyz")
        ]
        _scalar_panels(out_dir / "eval_cog.png", samples, cog, "Energy-weighted centre of gravity", detector=detector)
        written.append(("Centre of gravity", "eval_cog.png"))
        binned = {id(o): binned_energies(o, edges) for o in samples.values()}
        for j, (name, edge, unit) in enumerate(
            [("longitudinal", edges.layer, "layers"), ("radial", edges.radius_mm, "mm")]
        ):
            specs = [
                (f"e_{name}_{k}", _bin_label(edge, k, unit), (lambda o, k=k, j=j: binned[id(o)][j][:, k]))
                for k in range(len(edge) - 1)
            ]
            fname = f"eval_{name}_bins.png"
            _scalar_panels(
                out_dir / fname,
                samples,
                specs,
                f"Energy in the {len(specs)} {name} bins (edges: reference hit deciles)",
                n_cols=5,
                detector=detector,
            )
            written.append((f"Energy in the {name} bins", fname))
    return written
