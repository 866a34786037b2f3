"""Write the evaluation results: ``scores.json``, PNG plots and a self-contained ``report.html``.

The HTML page needs no server and no scripts: a score table (W1 x 100, AUC, FPD and KPD x 10^3,
the Geant4 floor next to every model with the ratio and pass/fail), the breakdown by incident
energy, the spectrum checks, the sample sizes, the cell threshold and bin edges, and every plot as
an ``<img>`` next to it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from caloclouds.evaluation.observables import BinEdges, CellObservables
from caloclouds.io.atomic import atomic_path

__all__ = [
    "write_report",
    "write_impact_report",
    "score_rows",
    "energy_rows",
    "impact_rows",
    "format_table",
    "text_table",
]

_IMPACT_TEXT = {
    "random": "each shower of every sample hits the cells at its own position, uniform within one cell, "
    "from the evaluation seed",
    "corner": "every shower axis at a cell corner: x = y = 0, where four cells of the ILD grid meet "
    "(a hexagon vertex for hexagonal cells)",
    "centre": "every shower axis at a cell centre",
}

W1_FACTOR = 100.0  # W1 is shown x 100, as in CaloClouds II Table 2
PD_FACTOR = 1000.0  # FPD and KPD are shown x 10^3, as in the CaloChallenge

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
_GROUP_ROWS = (("e_long_bins", "10 longitudinal bins"), ("e_radial_bins", "10 radial bins"))


def _fmt(entry: Mapping[str, Any], factor: float, digits: int = 2, key: str = "value") -> str:
    error_key = "error" if key == "value" else f"{key}_error"
    value, error = entry[key] * factor, entry[error_key] * factor
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def _verdict_word(entry: Mapping[str, Any]) -> str:
    """``pass``, ``FAIL``, ``not judged`` (too few showers) or ``""`` (the floor)."""
    if entry.get("not_judged"):
        return "not judged"
    return {True: "pass", False: "FAIL", None: ""}[entry.get("pass")]


def _verdict_cell(entry: Mapping[str, Any]) -> str:
    """``"1.07 ± 0.05 pass"``: the ratio to the floor, its error and the verdict."""
    return f"{entry['ratio']:.2f} ± {entry['ratio_error']:.2f} {_verdict_word(entry)}".rstrip()


def _auc_cell(entry: Mapping[str, Any]) -> str:
    """``"0.612 ± 0.021 pass"``: an AUC, its error (std over the folds) and the verdict."""
    return f"{entry['value']:.3f} ± {entry['error']:.3f} {_verdict_word(entry)}".rstrip()


def _score_entries(sample: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], float, int]]:
    """(row name, score entry, display factor, digits) of every judged score of a sample."""
    out = [(f"W1 x100 {name}", sample["w1"][key], W1_FACTOR, 2) for key, name in _W1_ROWS]
    out += [(f"W1 x100 {name}", sample["w1_groups"][key], W1_FACTOR, 2) for key, name in _GROUP_ROWS]
    if "fpd" in sample:
        out += [
            ("FPD x10^3 (fixed size)", sample["fpd"], PD_FACTOR, 2),
            ("KPD x10^3 (fixed size)", sample["kpd"], PD_FACTOR, 3),
        ]
    out.append(("AUC high-level", sample["auc"], 1.0, 3))
    for group, entry in sample.get("auc_groups", {}).items():
        out.append((f"  AUC, {group}", entry, 1.0, 3))
    if "auc_low_level" in sample:
        out.append(("AUC low-level (cells)", sample["auc_low_level"], 1.0, 3))
    return out


def score_rows(result: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the score table: the floor, then each model's value and ratio to the floor."""
    samples = result["samples"]
    floor_label = next(iter(samples))
    models = [label for label in samples if label != floor_label]
    header = ["score", floor_label]
    for label in models:
        header += [label, f"{label} / floor"]
    floor_rows = _score_entries(samples[floor_label])
    rows = []
    for i, (name, entry, factor, digits) in enumerate(floor_rows):
        row = [name, _fmt(entry, factor, digits)]
        for label in models:
            model_entry = _score_entries(samples[label])[i][1]
            row += [_fmt(model_entry, factor, digits), _verdict_cell(model_entry)]
        rows.append(row)
    extra = [("FPD x10^3 (extrapolated, jetnet)", "fpd_extrapolated"), ("KPD x10^3 (unbiased, jetnet)", "kpd_unbiased")]
    for name, key in extra:
        if key in samples[floor_label]:
            row = [name, _fmt(samples[floor_label][key], PD_FACTOR)]
            for label in models:
                row += [_fmt(samples[label][key], PD_FACTOR), ""]
            rows.append(row)
    if all("voxel_space" in s for s in samples.values()):
        mesh = samples[floor_label]["voxel_space"]["mesh"]
        for key, name in (("fpd", "FPD"), ("kpd", "KPD")):
            cells = [
                f"{s['voxel_space'][key + '_x1e3']:.2f} ± {s['voxel_space'][key + '_err_x1e3']:.2f}"
                for s in samples.values()
            ]
            row = [f"voxel {name} x10^3 ({mesh})", cells[0]]
            for c in cells[1:]:
                row += [c, ""]
            rows.append(row)
    sizes = [f"{s['n_showers'][0]}, {s['n_showers'][1]}" for s in samples.values()]
    row = ["showers (reference, sample)", sizes[0]]
    for size in sizes[1:]:
        row += [size, ""]
    rows.append(row)
    row = ["verdict (energy ranges included)", ""]
    for label in models:
        v = samples[label]["verdict"]
        row += ["", "pass" if v["pass"] else f"FAIL ({len(v['failed'])} of {v['n_judged']})"]
    rows.append(row)
    return header, rows


def impact_rows(results: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The score tables of several impact modes side by side: one block of columns per mode."""
    tables = {mode: score_rows(result) for mode, result in results.items()}
    first = next(iter(tables.values()))
    header = [first[0][0]] + [f"{mode}: {h}" for mode, (head, _) in tables.items() for h in head[1:]]
    rows = []
    for i, row in enumerate(first[1]):
        rows.append([row[0]] + [cell for _, body in tables.values() for cell in body[i][1:]])
    return header, rows


def energy_rows(result: Mapping[str, Any], key: str = "energy_bins") -> tuple[list[str], list[list[str]]]:
    """The ratio to the floor of every score in every energy range, one column per (model, range);
    ``key="theta_bins"``: the same by theta range (samples with a direction of incidence)."""
    samples = result["samples"]
    floor_label = next(iter(samples))
    models = [label for label in samples if label != floor_label]
    bins = list(samples[floor_label][key])
    what = "theta" if key == "theta_bins" else "energy"
    header = [f"ratio to floor by {what}"] + [
        f"{label} {b}" if len(models) > 1 else b for label in models for b in bins
    ]
    names: list[str] = []
    cells: dict[tuple[str, str], list[str]] = {}
    for label in models:
        for b in bins:
            entry = samples[label][key][b]
            if "w1" not in entry:
                cells[(label, b)] = []
                continue
            scored = _score_entries(entry)
            names = names or [name for name, *_ in scored]
            values = [_auc_cell(e) if "AUC" in name else _verdict_cell(e) for name, e, *_ in scored]
            cells[(label, b)] = values
    rows = []
    for i, name in enumerate(names):
        rows.append(
            [name.replace("W1 x100 ", "W1 ")]
            + [cells[(label, b)][i] if cells[(label, b)] else "-" for label in models for b in bins]
        )
    sizes = [str(samples[label][key][b]["n_showers"]) for label in models for b in bins]
    rows.append(["showers per sample"] + sizes)
    return header, rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    table = [header] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


def format_table(result: Mapping[str, Any]) -> str:
    """The score table and the energy breakdown as aligned plain text (for the terminal)."""
    text = text_table(*score_rows(result))
    samples = result["samples"]
    if any(samples[next(iter(samples))].get("energy_bins", {})):
        text += "\n\n" + text_table(*energy_rows(result))
    if any(samples[next(iter(samples))].get("theta_bins", {})):
        text += "\n\n" + text_table(*energy_rows(result, "theta_bins"))
    return text


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)

    def cell(c: str) -> str:
        cls = ' class="fail"' if "FAIL" in c else (' class="pass"' if c.endswith("pass") else "")
        return f"<td{cls}>{esc(c)}</td>"

    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(result: Mapping[str, Any], figures: list[tuple[str, str]]) -> str:
    esc = html.escape
    sources = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in result.get("sources", {}).items())
    edges = result["bin_edges"]
    imgs = "".join(
        f'<h3>{esc(title)}</h3><a href="{esc(name)}"><img src="{esc(name)}" alt="{esc(title)}"></a>'
        for title, name in figures
    )
    cfg, opts = result["config"], result["options"]
    det = result.get("detector") or {  # scores.json written before the MIP moved to the detector
        "name": "ild-like-siw",
        "cell_threshold_mip": cfg.get("cell_threshold_mip"),
        "mip_mev": cfg.get("mip_mev"),
    }
    thresholds = opts["thresholds"]
    low = opts.get("low_level")
    low_text = (
        f"AUC low-level: a {low['folds']}-fold point-set classifier (torch-geometric) on the cells above "
        f"threshold, each cell (x, y, r, layer, log e). "
        if low
        else ""
    )
    spectra = "".join(
        f"<li><b>{esc(label)}</b>: KS D = {s['spectrum']['statistic']:.3f}, p = {s['spectrum']['p_value']:.2g}</li>"
        for label, s in result["samples"].items()
        if "spectrum" in s
    )
    energy = _html_table(*energy_rows(result)) if any(next(iter(result["samples"].values()))["energy_bins"]) else ""
    angled = _direction_html(result)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>caloclouds evaluation</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1500px; }}
table {{ border-collapse: collapse; font-size: 14px; margin-bottom: 1em; }}
th, td {{ border: 1px solid #bbb; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #eee; }}
td.fail {{ background: #f8d0d0; }}
td.pass {{ background: #d8f0d8; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>Cell-level evaluation against {esc(result["reference_label"])}</h1>
<ul>{sources}</ul>
<p class="note"><b>Impact position: {esc(result.get("impact", "corner"))}</b> ({_IMPACT_TEXT.get(result.get("impact", "corner"), "")})
Radii and the centre of gravity are measured from each shower's axis.</p>
<p class="note">Cells: geometry <code>{esc(cfg["geometry"])}</code>, threshold
{result["threshold_mev"]:.4g} MeV ({det["cell_threshold_mip"]} MIP of {det["mip_mev"]} MeV, detector {esc(det["name"])}).
<b>Floor</b> ({esc(result["floor_from"])}): every score is also computed between two independent
Geant4 samples of the same size ({result["n_compared"]} showers each), drawn and batched the same way;
a model is judged by its ratio to it (a perfect model: about 1). A score passes when it is within its
limit by its error: a distance when ratio - ratio error &le; {thresholds["max_ratio"]}, a classifier when
AUC - error &le; {thresholds["max_auc"]} (low-level: {thresholds.get("max_auc_low_level") or thresholds["max_auc"]}; the error of an AUC is its
std over the folds). The verdict counts every energy range too; per-range AUCs on fewer than
{opts.get("min_judged_showers", 200)} showers a side are shown, not judged.
W1 is computed on values standardised by the reference mean and std, as the mean over
{result["w1_draws"]} random batches of {result["w1_batch_size"]} showers (error: std over batches /
√(showers / batch size)); the bin groups are the mean of the 10 W1 means with error √Σσ².
FPD and KPD (fixed size) are the Fréchet distance and the biased polynomial-kernel MMD² (degree
{cfg["kpd_degree"]}) between random batches; the field's extrapolated FPD and unbiased KPD, about 0 at the
floor, are listed without a ratio. AUC high-level: {cfg["classifier_folds"]}-fold classifier on the
{len(result["features"])} high-level features (mean ± std over folds); the same classifier on the
radial bins alone and on the other features shows where a high AUC comes from. {low_text}
Voxel FPD/KPD (when a voxel mesh is set) use the CaloChallenge high-level features of the showers
voxelised onto that mesh.</p>
{_html_table(*score_rows(result))}
<h2>By incident energy</h2>
<p class="note">The same scores on equal-size samples in each energy range (ratio to the floor of that range).</p>
{energy}
{angled}<h2>Incident-energy spectra (KS test against the reference)</h2>
<ul>{spectra}</ul>
<p class="note">Longitudinal bin edges (layers): {edges["layer"]}<br>
Radial bin edges (mm): {[round(e, 2) for e in edges["radius_mm"]]}</p>
{imgs}
</body></html>
"""


def _direction_html(result: Mapping[str, Any]) -> str:
    """The oblique-incidence section of the report: empty for normal-incidence samples."""
    direction = result.get("direction")
    if not direction:
        return ""
    esc = html.escape
    lo, hi = direction["theta_deg_range"]
    checks = "".join(
        f"<li><b>{esc(label)}</b>: "
        + "; ".join(f"{a} KS D = {c['statistic']:.3f}, p = {c['p_value']:.2g}" for a, c in s["angle_spectra"].items())
        + "</li>"
        for label, s in result["samples"].items()
        if "angle_spectra" in s
    )
    table = _html_table(*energy_rows(result, "theta_bins"))
    return f"""<h2>By angle of incidence</h2>
<p class="note">The reference's photons arrive at theta {lo:.1f}-{hi:.1f} deg. Radial profile: {esc(direction["radial_axis"])}.
Both classifiers also see the conditions ({esc(", ".join(direction["classifier_conditions"]))}), equal in
distribution in both samples. The same scores on equal-size samples in each theta range (ratio to the
floor of that range); per-range AUCs on fewer than {result["options"].get("min_judged_showers", 200)}
showers a side are shown, not judged.</p>
{table}
<h3>Angle distributions (KS test against the reference)</h3>
<ul>{checks}</ul>
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

        figures = plot_all(
            out_dir,
            reference,
            generated,
            edges,
            reference_label=reference_label,
            threshold_mev=result["threshold_mev"],
            geometry=result["config"]["geometry"],
        )
        written += [out_dir / name for _, name in figures]
    with atomic_path(out_dir / "report.html") as tmp:
        Path(tmp).write_text(_html(result, figures))
    written.append(out_dir / "report.html")
    return written


def write_impact_report(out_dir: Path, results: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """``scores.json`` and ``report.html`` of ``--impact all``: the modes' score tables side by side.

    Each mode's full report is in ``out_dir/MODE/``; ``scores.json`` holds ``{"impact": "all",
    "modes": [...], "by_impact": {mode: that mode's scores}}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    combined = {"impact": "all", "modes": list(results), "by_impact": dict(results)}
    with atomic_path(out_dir / "scores.json") as tmp:
        Path(tmp).write_text(json.dumps(combined, indent=2, allow_nan=True) + "\n")
    esc = html.escape
    first = next(iter(results.values()))
    links = "".join(
        f'<li><b>{esc(mode)}</b> ({esc(_IMPACT_TEXT.get(mode, ""))}): <a href="{esc(mode)}/report.html">full report</a></li>'
        for mode in results
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>caloclouds evaluation, three impact positions</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #bbb; padding: 3px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #eee; }}
td.fail {{ background: #f8d0d0; }}
td.pass {{ background: #d8f0d8; }}
</style></head><body>
<h1>Cell-level evaluation against {esc(first["reference_label"])} at three impact positions</h1>
<p>Geometry <code>{esc(first["config"]["geometry"])}</code>, {first["n_compared"]} showers per sample,
floor from {esc(first["floor_from"])}. Radii and the centre of gravity are measured from each shower's axis.</p>
<ul>{links}</ul>
{_html_table(*impact_rows(results))}
</body></html>
"""
    with atomic_path(out_dir / "report.html") as tmp:
        Path(tmp).write_text(page)
    return [out_dir / "scores.json", out_dir / "report.html"]
