"""Plotting helpers: hist-based histograms, the neutral detector label, ratio arrows."""

from __future__ import annotations

import numpy as np
import pytest

from caloclouds.evaluation.plots import Curve, _panel, detector_label, histogram


def test_histogram_matches_numpy_and_is_normalised_per_shower() -> None:
    rng = np.random.default_rng(0)
    values, weights = rng.normal(size=500), rng.uniform(0.5, 2.0, 500)
    edges = np.linspace(-2.0, 2.0, 9)
    curve = histogram("a", values, edges, weights=weights, n_showers=50)
    clipped = np.clip(values, -2.0, np.nextafter(2.0, -np.inf))
    counts, _ = np.histogram(clipped, bins=edges, weights=weights)
    sq, _ = np.histogram(clipped, bins=edges, weights=weights**2)
    np.testing.assert_allclose(curve.values, counts / (50 * np.diff(edges)))
    np.testing.assert_allclose(curve.errors, np.sqrt(sq) / (50 * np.diff(edges)))
    raw = histogram("b", values, edges, n_showers=500, per_width=False, clip=False)
    assert raw.values.sum() == pytest.approx(np.mean(np.abs(values) < 2.0))


def test_detector_label_is_neutral() -> None:
    assert detector_label("ild") == "ILD-like" and detector_label("hgcal") == "HGCal-like"
    assert detector_label("hex:5") == "hex:5"


def test_ratios_off_the_panel_are_arrows() -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    ax, rax = fig.add_subplot(211), fig.add_subplot(212)
    edges = np.arange(5.0)
    ref = Curve("Geant4", np.ones(4), np.full(4, 0.01))
    model = Curve("model", np.array([1.0, 3.0, 0.1, 1.1]), np.full(4, 0.01))
    _panel(ax, rax, edges, [ref, model], xlabel="x", ylabel="y", detector="ILD-like")
    markers = {line.get_marker(): np.asarray(line.get_xdata()).tolist() for line in rax.get_lines()}
    assert markers[r"$\uparrow$"] == [1.5] and markers[r"$\downarrow$"] == [2.5]
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "ILD-like" in texts and "CMS" not in texts
