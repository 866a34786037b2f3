"""Write the evaluation results: ``scores.json``, PNG plots and a self-contained ``report.html``.

The HTML page needs no server and no scripts: a score table (W1 x 100, AUC, FPD and KPD x 10^3,
the Geant4 floor next to every model), the sample sizes, the cell threshold and bin edges, and
every plot as an ``<img>`` next to it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from caloclouds.evaluation.observables import BinEdges, CellObservables
from caloclouds.io.atomic import atomic_path

__all__ = ["write_report", "score_rows", "format_table"]

W1_FACTOR = 100.0     # W1 is shown x 100, as in CaloClouds II Table 2
PD_FACTOR = 1000.0    # FPD and KPD are shown x 10^3, as in the CaloChallenge

_W1_ROWS = (
    ("n_hits", "number of hits"),
    ("e_ratio", "E_vis / E_inc"),
    ("cell_energy_mev", "cell energy"),
    ("longitudinal_profile", "longitudinal profile"),
    ("radial_profile", "radial profile"),
    ("cog_x_mm", "CoG x"),
    ("cog_y_mm", "CoG y"),
    ("cog_z_mm", "CoG z (depth)"),
)


def _fmt(entry: Mapping[str, Any], factor: float, digits: int = 2) -> str:
    value, error = entry["value"] * factor, entry["error"] * factor
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def score_rows(result: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the score table (one column per sample, the floor first)."""
    samples = result["samples"]
    header = ["score"] + list(samples)
    rows = []
    for key, name in _W1_ROWS:
        rows.append([f"W1 x100 {name}"] + [_fmt(s["w1"][key], W1_FACTOR) for s in samples.values()])
    for key, name in (("e_long_bins", "10 longitudinal bins"), ("e_radial_bins", "10 radial bins")):
        rows.append([f"W1 x100 {name}"] + [_fmt(s["w1_groups"][key], W1_FACTOR) for s in samples.values()])
    rows.append(["classifier AUC"] + [_fmt(s["auc"], 1.0, 3) for s in samples.values()])
    for group in next(iter(samples.values())).get("auc_groups", {}):
        rows.append([f"  AUC, {group}"] + [_fmt(s["auc_groups"][group], 1.0, 3) for s in samples.values()])
    rows.append(["FPD x10^3"] + [_fmt(s["fpd"], PD_FACTOR) for s in samples.values()])
    rows.append(["KPD x10^3"] + [_fmt(s["kpd"], PD_FACTOR) for s in samples.values()])
    if all("voxel_space" in s for s in samples.values()):
        mesh = next(iter(samples.values()))["voxel_space"]["mesh"]
        for key, name in (("fpd", "FPD"), ("kpd", "KPD")):
            rows.append([f"voxel {name} x10^3 ({mesh})"] + [
                f"{s['voxel_space'][key + '_x1e3']:.2f} ± {s['voxel_space'][key + '_err_x1e3']:.2f}"
                for s in samples.values()
            ])
    rows.append(["showers (reference, sample)"] + [f"{s['n_showers'][0]}, {s['n_showers'][1]}" for s in samples.values()])
    return header, rows


def format_table(result: Mapping[str, Any]) -> str:
    """The score table as aligned plain text (for the terminal)."""
    header, rows = score_rows(result)
    table = [header] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


def _html(result: Mapping[str, Any], figures: list[tuple[str, str]]) -> str:
    header, rows = score_rows(result)
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    sources = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in result.get("sources", {}).items())
    edges = result["bin_edges"]
    imgs = "".join(
        f'<h3>{esc(title)}</h3><a href="{esc(name)}"><img src="{esc(name)}" alt="{esc(title)}"></a>'
        for title, name in figures
    )
    cfg = result["config"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>caloclouds evaluation</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1500px; }}
table {{ border-collapse: collapse; font-size: 14px; }}
th, td {{ border: 1px solid #bbb; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #eee; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>Cell-level evaluation against {esc(result["reference_label"])}</h1>
<ul>{sources}</ul>
<p class="note">Cells: geometry <code>{esc(cfg["geometry"])}</code>, threshold
{result["threshold_mev"]:.4g} MeV ({cfg["cell_threshold_mip"]} MIP of {cfg["mip_mev"]} MeV).
W1 is computed on values standardised by the reference mean and std, as mean ± std over
{result["w1_batches"]} disjoint batches of {result["w1_batch_size"]} showers; the bin groups are
the mean of the 10 W1 means with error √Σσ². AUC: {cfg["classifier_folds"]}-fold classifier on the
{len(result["features"])} high-level features (mean ± std over folds); the same classifier on the
radial bins alone and on the other features shows where a high AUC comes from. FPD is extrapolated to
infinite samples; KPD is the unbiased MMD² with a degree-{cfg["kpd_degree"]} polynomial kernel.
Voxel FPD/KPD (when a voxel mesh is set) use the CaloChallenge high-level features of the showers
voxelised onto that mesh.
The column <b>Geant4 A vs B</b> compares two disjoint halves of the reference: the floor a
perfect model would reach.</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p class="note">Longitudinal bin edges (layers): {edges["layer"]}<br>
Radial bin edges (mm): {[round(e, 2) for e in edges["radius_mm"]]}</p>
{imgs}
</body></html>
"""


def write_report(
    out_dir: Path,
    result: Mapping[str, Any],
    reference: CellObservables,
    generated: Mapping[str, CellObservables],
    edges: BinEdges,
    *,
    reference_label: str = "Geant4",
    plots: bool = True,
) -> list[Path]:
    """Write ``scores.json``, the PNGs (if ``plots``) and ``report.html`` into ``out_dir``.

    Returns:
        The paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_path(out_dir / "scores.json") as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    written.append(out_dir / "scores.json")
    figures: list[tuple[str, str]] = []
    if plots:
        from caloclouds.evaluation.plots import plot_all

        figures = plot_all(out_dir, reference, generated, edges, reference_label=reference_label,
                           threshold_mev=result["threshold_mev"])
        written += [out_dir / name for _, name in figures]
    with atomic_path(out_dir / "report.html") as tmp:
        Path(tmp).write_text(_html(result, figures))
    written.append(out_dir / "report.html")
    return written
