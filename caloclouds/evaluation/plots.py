"""Geant4-vs-model histograms with ratio panels (the style of CaloClouds II Figs. 3-5).

Each panel shows the reference as a filled grey histogram and each model as a coloured line;
below it, the ratio model / reference with the reference's statistical uncertainty as a grey band
and the model's as error bars. Matplotlib is imported inside the functions, and figures are built
without pyplot (no backend switch, no display needed). mplhep's CMS-like style is used when mplhep
is installed, plain matplotlib otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caloclouds.evaluation.observables import BinEdges, CellObservables, binned_energies

__all__ = ["Curve", "plot_all"]

REFERENCE_COLOUR = "0.75"
MODEL_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
RATIO_LIMITS = (0.5, 1.5)
_DPI = 110


@dataclass(frozen=True)
class Curve:
    """A histogram normalised per shower, with its statistical error, for one sample."""

    label: str
    values: np.ndarray   # (B,) height of each bin
    errors: np.ndarray   # (B,) statistical error of each height


def _density(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised histogram (density) of per-shower values and its Poisson error."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    norm = max(len(values), 1) * np.diff(edges)
    return counts / norm, np.sqrt(counts) / norm


def _per_shower_profile(
    bins: np.ndarray, weights: np.ndarray, shower: np.ndarray, n_showers: int, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean over showers of the summed weight per bin, and the standard error of that mean."""
    ok = (bins >= 0) & (bins < n_bins)
    sums = np.bincount(shower[ok] * n_bins + bins[ok], weights=weights[ok], minlength=n_showers * n_bins)
    sums = sums.reshape(n_showers, n_bins)
    return sums.mean(0), sums.std(0) / np.sqrt(max(n_showers, 1))


def _style() -> Any:
    """A context manager with the HEP style if mplhep is installed, else matplotlib's default."""
    import contextlib

    import matplotlib.style

    try:
        import mplhep
    except ImportError:
        return contextlib.nullcontext()
    return matplotlib.style.context(mplhep.style.CMS)


def _panel(
    ax: Any, rax: Any, edges: np.ndarray, curves: Sequence[Curve], *,
    xlabel: str, ylabel: str, logx: bool = False, logy: bool = False, legend: bool = False,
) -> None:
    """Draw one histogram panel and its ratio panel."""
    ref, models = curves[0], curves[1:]
    ax.stairs(ref.values, edges, fill=True, color=REFERENCE_COLOUR, label=ref.label)
    ax.stairs(ref.values, edges, color="0.45", linewidth=0.8)
    for i, c in enumerate(models):
        ax.stairs(c.values, edges, color=MODEL_COLOURS[i % len(MODEL_COLOURS)], linewidth=1.6, label=c.label)
    centres = np.sqrt(edges[1:] * edges[:-1]) if logx else 0.5 * (edges[1:] + edges[:-1])
    safe = np.where(ref.values > 0, ref.values, np.nan)
    rel = ref.errors / safe
    rax.stairs(1 + np.nan_to_num(rel), edges, baseline=1 - np.nan_to_num(rel), fill=True,
               color=REFERENCE_COLOUR, alpha=0.8)
    rax.axhline(1.0, color="0.3", linewidth=0.8)
    for i, c in enumerate(models):
        colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
        ratio = c.values / safe
        shown = np.clip(ratio, *RATIO_LIMITS)
        rax.errorbar(centres, shown, yerr=np.where(ratio == shown, c.errors / safe, 0.0),
                     fmt="o", markersize=2.5, color=colour, elinewidth=0.8, linewidth=0)
    rax.set_ylim(*RATIO_LIMITS)
    rax.set_ylabel(f"model / {ref.label}" if len(ref.label) < 8 else "ratio", fontsize=8)
    rax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
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
    if legend:
        ax.legend(fontsize=8, frameon=True, framealpha=0.9, edgecolor="0.8")


def _figure(n_panels: int, n_cols: int, width_in: float = 4.2) -> tuple[Any, list[tuple[Any, Any]]]:
    """A figure of ``n_panels`` (main, ratio) axis pairs on a grid of ``n_cols`` columns."""
    from matplotlib.figure import Figure

    n_rows = (n_panels + n_cols - 1) // n_cols
    height_in = 3.9 * n_rows + 0.5
    fig = Figure(figsize=(width_in * n_cols, height_in))  # no pyplot: no backend or global figure
    outer = fig.add_gridspec(
        n_rows, n_cols, left=0.75 / (width_in * n_cols), right=1 - 0.15 / (width_in * n_cols),
        bottom=0.55 / height_in, top=1 - 0.5 / height_in, hspace=0.3, wspace=0.32,
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
    path: Path, samples: Mapping[str, CellObservables], specs: Sequence[tuple[str, str, Any]], title: str,
    *, n_cols: int = 3,
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
        curves = [Curve(label, *_density(a, edges)) for label, a in zip(samples, arrays)]
        _panel(ax, rax, edges, curves, xlabel=xlabel, ylabel="showers (normalised)", legend=p == 0)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=_DPI)


def _energy_figure(path: Path, samples: Mapping[str, CellObservables], threshold_mev: float) -> None:
    fig, axes = _figure(3, 3)
    # cell-energy spectrum: hits per shower per bin, log-log
    lo = max(threshold_mev * 0.8, 1e-3)
    hi = max(float(o.hit_e_mev.max()) for o in samples.values() if len(o.hit_e_mev)) * 1.2
    edges = np.geomspace(lo, hi, 51)
    curves = []
    for label, o in samples.items():
        counts, _ = np.histogram(o.hit_e_mev, bins=edges)
        curves.append(Curve(label, counts / len(o), np.sqrt(counts) / len(o)))
    ax, rax = axes[0]
    _panel(ax, rax, edges, curves, xlabel="cell energy [MeV]", ylabel="hits per shower",
           logx=True, logy=True, legend=True)
    ax.axvline(threshold_mev, color="k", linestyle="--", linewidth=0.8)
    ax.text(threshold_mev * 1.1, ax.get_ylim()[0] * 3, "threshold", fontsize=7, rotation=90)
    for (name, xlabel, getter), (ax, rax) in zip(
        [("n_hits", "number of hits", lambda o: o.n_hits),
         ("e_ratio", r"$E_\mathrm{vis} / E_\mathrm{inc}$", lambda o: o.e_ratio)],
        axes[1:],
    ):
        arrays = [np.asarray(getter(o), dtype=np.float64) for o in samples.values()]
        a_lo, a_hi = _range(arrays)
        edges = np.linspace(max(a_lo, 0.0), a_hi, _n_bins(len(arrays[0])) + 1)
        _panel(ax, rax, edges, [Curve(lab, *_density(a, edges)) for lab, a in zip(samples, arrays)],
               xlabel=xlabel, ylabel="showers (normalised)")
    fig.suptitle("Cell energies, number of hits and visible energy", fontsize=11)
    fig.savefig(path, dpi=_DPI)


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


def _profile_figure(path: Path, samples: Mapping[str, CellObservables], edges: BinEdges) -> None:
    fig, axes = _figure(2, 2, width_in=5.5)
    ref = next(iter(samples.values()))
    n_layers = ref.n_layers
    layer_edges = np.arange(n_layers + 1) - 0.5
    curves = []
    for label, o in samples.items():
        curves.append(Curve(label, o.layer_e_mev.mean(0), o.layer_e_mev.std(0) / np.sqrt(len(o))))
    ax, rax = axes[0]
    _panel(ax, rax, layer_edges, curves, xlabel="layer", ylabel="mean energy per layer [MeV]",
           logy=True, legend=True)
    for e in edges.layer[1:-1]:
        ax.axvline(e - 0.5, color="0.6", linestyle=":", linewidth=0.7)
    r_edges = _radial_edges(ref.hit_r_mm)
    r_max = r_edges[-1]
    curves = []
    for label, o in samples.items():
        bins = np.searchsorted(r_edges, o.hit_r_mm, side="right") - 1
        mean, err = _per_shower_profile(bins, o.hit_e_mev, o.hit_shower, len(o), len(r_edges) - 1)
        width = np.diff(r_edges)
        curves.append(Curve(label, mean / width, err / width))
    ax, rax = axes[1]
    _panel(ax, rax, r_edges, curves, xlabel="radius about the shower axis [mm]",
           ylabel="mean dE/dr per shower [MeV/mm]", logy=True)
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
) -> list[tuple[str, str]]:
    """Draw every observable; returns ``(title, file name)`` of each PNG written to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = {reference_label: reference, **generated}
    written = []
    with _style():
        _energy_figure(out_dir / "eval_energy.png", samples, threshold_mev)
        written.append(("Cell energies, hits, visible energy", "eval_energy.png"))
        _profile_figure(out_dir / "eval_profiles.png", samples, edges)
        written.append(("Longitudinal and radial profiles", "eval_profiles.png"))
        cog = [(f"cog_{c}", f"centre of gravity {c} [mm]", (lambda o, j=j: o.cog_mm[:, j]))
               for j, c in enumerate("xyz")]
        _scalar_panels(out_dir / "eval_cog.png", samples, cog, "Energy-weighted centre of gravity")
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
            _scalar_panels(out_dir / fname, samples, specs,
                           f"Energy in the {len(specs)} {name} bins (edges: reference hit deciles)", n_cols=5)
            written.append((f"Energy in the {name} bins", fname))
    return written
