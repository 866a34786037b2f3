"""Distances between a reference (Geant4) sample and a generated one.

* :func:`batched_w1`: Wasserstein-1 distance of each observable, standardised by the reference
  mean and standard deviation, as mean +- std over disjoint batches of showers (CaloClouds II,
  Sec. 5.3 and Table 2). Per-hit observables (cell energies, the energy-weighted layer and radius
  of the hits) use all hits of the showers of a batch.
* :func:`fpd`: Fréchet Physics Distance extrapolated to infinite sample size.
* :func:`kpd`: Kernel Physics Distance, the unbiased MMD^2 with a polynomial kernel.
* :func:`batched_fpd`, :func:`batched_kpd`: the Fréchet distance and the (biased, V-statistic)
  polynomial-kernel MMD^2 at a fixed sample size, averaged over many random batches. Unlike the
  extrapolated FPD and the unbiased KPD, which are about 0 for two samples of one distribution,
  these have a positive floor that depends only on the batch size, so a ratio to the Geant4 floor
  is meaningful (see :mod:`~caloclouds.evaluation.floor`).

FPD and KPD follow the definitions of the jetnet library (Kansal et al. 2023), re-implemented here
with numpy and scipy; jetnet is not a dependency.

References:
    Buss et al., arXiv:2309.05704 (CaloClouds II), Sec. 5.3.
    Kansal et al., "Evaluating generative models in high energy physics",
    Phys. Rev. D 107 (2023) 076017, arXiv:2211.10295.
    Chong and Forsyth, "Effectively unbiased FID and Inception Score and where to find them",
    CVPR 2020, arXiv:1911.07023 (the 1/N extrapolation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from caloclouds.showers import ragged_take, standardised_w1

__all__ = [
    "Observable",
    "Score",
    "standardisation",
    "batched_w1",
    "frechet_distance",
    "fpd",
    "mmd_poly_unbiased",
    "kpd",
    "batched_fpd",
    "batched_kpd",
]


@dataclass(frozen=True)
class Score:
    """A value with its uncertainty (std over batches, fit error or half a 68 % range)."""

    value: float
    error: float

    def to_dict(self) -> dict[str, float]:
        return {"value": float(self.value), "error": float(self.error)}


@dataclass(frozen=True)
class Observable:
    """One observable of a set of showers, as values (and optional weights) per shower batch.

    Attributes:
        values: (K,) values; K is the number of showers (per-shower observable) or of hits.
        offsets: None for a per-shower observable, else (N+1,) offsets of the hits of each shower.
        weights: optional (K,) weights (e.g. hit energies for an energy-weighted profile).
    """

    values: np.ndarray
    offsets: np.ndarray | None = None
    weights: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Values and weights of the showers ``idx``."""
        if self.offsets is None:
            sel: np.ndarray | slice = idx
        else:
            sel, _ = ragged_take(self.offsets, idx)
        return self.values[sel], None if self.weights is None else self.weights[sel]


def standardisation(obs: Observable) -> tuple[float, float]:
    """(Weighted) mean and std of an observable; a std of 0 is replaced by 1."""
    values = np.asarray(obs.values, dtype=np.float64)
    if len(values) == 0:
        return 0.0, 1.0
    w = None if obs.weights is None else np.asarray(obs.weights, dtype=np.float64)
    if w is not None and w.sum() <= 0:
        return 0.0, 1.0
    mean = float(np.average(values, weights=w))
    std = float(np.sqrt(np.average((values - mean) ** 2, weights=w)))
    return mean, std if std > 0 else 1.0


def batched_w1(
    reference: Mapping[str, Observable],
    other: Mapping[str, Observable],
    *,
    reference_batches: list[np.ndarray],
    other_batches: list[np.ndarray],
    scale: Mapping[str, tuple[float, float]],
) -> dict[str, Score]:
    """Standardised W1 of every observable, as mean +- std over paired disjoint batches.

    Args:
        reference: observables of the reference sample, by name.
        other: the same observables of the sample to compare.
        reference_batches: shower indices into the reference, one array per batch.
        other_batches: shower indices into ``other``, as many batches as ``reference_batches``.
        scale: ``(mean, std)`` of each observable in the full reference: values become
            ``(x - mean) / std`` before the distance (so W1 is in units of the reference std).

    Returns:
        Name -> :class:`Score` (mean and std over the batches).
    """
    if len(reference_batches) != len(other_batches) or not reference_batches:
        msg = f"need the same number (>0) of batches, got {len(reference_batches)} and {len(other_batches)}"
        raise ValueError(msg)
    from tqdm.auto import tqdm

    scores = {}
    for name, ref_obs in tqdm(reference.items(), desc="W1 batches", unit="observable", disable=None, leave=False):
        mean, std = scale[name]
        values = []
        for ref_idx, oth_idx in zip(reference_batches, other_batches):
            u, uw = ref_obs.take(ref_idx)
            v, vw = other[name].take(oth_idx)
            values.append(standardised_w1((u - mean) / std, (v - mean) / std, scale=1.0, a_weights=uw, b_weights=vw))
        arr = np.asarray(values)
        ok = arr[np.isfinite(arr)]
        scores[name] = Score(float(ok.mean()), float(ok.std())) if len(ok) else Score(float("nan"), float("nan"))
    return scores


# ------------------------------------------------------------------------------------------------
# Fréchet Physics Distance (jetnet.evaluation.fpd, arXiv:2211.10295 Sec. III)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *, eps: float = 1e-6
) -> float:
    """Fréchet distance between two Gaussians: |mu1-mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    If the matrix square root is not finite, ``eps`` is added to both diagonals (as jetnet does).
    """
    from scipy.linalg import sqrtm

    diff = mu1 - mu2
    covmean = sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * eps
        covmean = sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _normalise(real: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide both samples feature-wise by max |real| (jetnet's ``normalise=True``)."""
    scale = np.max(np.abs(real), axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return real / scale, gen / scale


def fpd(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    min_samples: int = 20000,
    max_samples: int = 50000,
    num_points: int = 10,
    num_batches: int = 20,
    seed: int = 42,
) -> Score:
    """Fréchet Physics Distance, extrapolated to an infinite number of samples.

    Both samples are divided by max |real| per feature. For ``num_points`` sample sizes N evenly
    spaced in 1/N between ``min_samples`` and ``max_samples``, the Fréchet distance is averaged
    over ``num_batches`` bootstrap draws (with replacement) of N showers from each sample; a fit
    FPD(N) = FPD_inf + b / N with FPD_inf, b >= 0 gives the value (intercept) and its error.

    Args:
        real: (N_r, F) reference features.
        gen: (N_g, F) generated features.
        min_samples, max_samples: smallest and largest bootstrap size.
        num_points: number of sizes in the fit.
        num_batches: bootstrap draws per size.
        seed: seed of the bootstrap draws.

    Returns:
        :class:`Score` with ``FPD_inf`` and the fit's standard error.

    References:
        Kansal et al., arXiv:2211.10295; Chong and Forsyth, arXiv:1911.07023.
    """
    from scipy.optimize import curve_fit

    if not 2 <= min_samples <= max_samples:
        msg = f"need 2 <= min_samples <= max_samples, got {min_samples} and {max_samples}"
        raise ValueError(msg)
    real, gen = _normalise(np.asarray(real, np.float64), np.asarray(gen, np.float64))
    rng = np.random.default_rng(seed)
    sizes = (1.0 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype(np.int64)
    means = []
    for n in sizes:  # num_points x num_batches Fréchet distances of F x F matrices
        vals = []
        for _ in range(num_batches):
            r = real[rng.integers(0, len(real), n)]
            g = gen[rng.integers(0, len(gen), n)]
            vals.append(frechet_distance(r.mean(0), np.cov(r, rowvar=False), g.mean(0), np.cov(g, rowvar=False)))
        means.append(np.mean(vals))

    def linear(x: np.ndarray, intercept: float, slope: float) -> np.ndarray:
        return intercept + slope * x

    params, cov = curve_fit(linear, 1.0 / sizes, np.asarray(means), bounds=([0, 0], [np.inf, np.inf]))
    return Score(float(params[0]), float(np.sqrt(max(cov[0, 0], 0.0))))


# ------------------------------------------------------------------------------------------------
# Kernel Physics Distance (jetnet.evaluation.kpd, arXiv:2211.10295 Sec. III)


def _poly_kernel(degree: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x @ y.T / x.shape[1] + 1.0) ** degree

    return kernel


def mmd_poly_unbiased(x: np.ndarray, y: np.ndarray, *, degree: int = 4) -> float:
    """Unbiased quadratic-time MMD^2 with the kernel k(a, b) = (a.b / d + 1)^degree.

    Args:
        x: (m, d) and y: (n, d) samples, m, n >= 2.
        degree: polynomial degree (jetnet uses 4; 3 is the KID choice).
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 samples on each side, got {m} and {n}")
    k = _poly_kernel(degree)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    term_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(term_x + term_y - 2.0 * kxy.mean())


def kpd(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    batch_size: int = 5000,
    num_batches: int = 10,
    degree: int = 4,
    seed: int = 42,
) -> Score:
    """Kernel Physics Distance: median over batches of the unbiased polynomial-kernel MMD^2.

    Both samples are divided by max |real| per feature. Each batch draws ``batch_size`` showers
    from each sample without replacement (clipped to the sample sizes).

    Returns:
        :class:`Score` with the median and half the 16.275-83.725 percentile range.

    References:
        Kansal et al., arXiv:2211.10295; Bińkowski et al., "Demystifying MMD GANs", arXiv:1801.01401.
    """
    real, gen = _normalise(np.asarray(real, np.float64), np.asarray(gen, np.float64))
    rng = np.random.default_rng(seed)
    n_r, n_g = min(batch_size, len(real)), min(batch_size, len(gen))
    vals = np.array(
        [
            mmd_poly_unbiased(
                real[rng.choice(len(real), n_r, replace=False)],
                gen[rng.choice(len(gen), n_g, replace=False)],
                degree=degree,
            )
            for _ in range(num_batches)
        ]
    )
    lo, hi = np.percentile(vals, [16.275, 83.725])
    return Score(float(np.median(vals)), float((hi - lo) / 2))


# ------------------------------------------------------------------------------------------------
# Fixed-size FPD and KPD over random batches (for ratios to the Geant4 floor)


def _stacked(
    real: np.ndarray, gen: np.ndarray, reference_batches: list[np.ndarray], other_batches: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(K, b, F) batches of both samples, divided feature-wise by max |real|."""
    if len(reference_batches) != len(other_batches) or not reference_batches:
        msg = f"need the same number (>0) of batches, got {len(reference_batches)} and {len(other_batches)}"
        raise ValueError(msg)
    real, gen = _normalise(np.asarray(real, np.float64), np.asarray(gen, np.float64))
    return real[np.stack(reference_batches)], gen[np.stack(other_batches)]


def _batch_score(values: np.ndarray, independent: float) -> Score:
    """Mean over draws; error: their std over sqrt(number of independent batches)."""
    return Score(float(values.mean()), float(values.std() / np.sqrt(max(independent, 1.0))))


def batched_fpd(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    reference_batches: list[np.ndarray],
    other_batches: list[np.ndarray],
    pool_size: int,
) -> Score:
    """Fréchet distance between batches of b showers, mean over the batch pairs.

    Both samples are divided by max |real| per feature (as in :func:`fpd`); batch k of the
    reference is compared with batch k of ``gen``. Tr sqrt(S1 S2) is the sum of the square roots
    of the (real, non-negative) eigenvalues of S1 S2, for all batches at once.

    Args:
        real: (N_r, F) reference features.
        gen: (N_g, F) features of the other sample.
        reference_batches, other_batches: K index arrays of b showers each.
        pool_size: showers the batches are drawn from (the error counts pool_size / b
            independent batches).

    Returns:
        :class:`Score`: mean and error over the batches.
    """
    x, y = _stacked(real, gen, reference_batches, other_batches)
    b = x.shape[1]
    mu_x, mu_y = x.mean(1), y.mean(1)
    xc, yc = x - mu_x[:, None], y - mu_y[:, None]
    s_x = np.einsum("kbi,kbj->kij", xc, xc) / (b - 1)
    s_y = np.einsum("kbi,kbj->kij", yc, yc) / (b - 1)
    eig = np.linalg.eigvals(s_x @ s_y)
    tr_sqrt = np.sqrt(np.clip(eig.real, 0.0, None)).sum(1)
    values = (
        ((mu_x - mu_y) ** 2).sum(1) + np.trace(s_x, axis1=1, axis2=2) + np.trace(s_y, axis1=1, axis2=2) - 2 * tr_sqrt
    )
    return _batch_score(values, pool_size / b)


def batched_kpd(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    reference_batches: list[np.ndarray],
    other_batches: list[np.ndarray],
    pool_size: int,
    degree: int = 4,
) -> Score:
    """Biased (V-statistic) MMD^2 with the kernel (a.b / d + 1)^degree between batches, mean over them.

    The diagonal terms k(x, x) are kept, so two batches of one distribution give a positive value
    of order 1/b; see :func:`batched_fpd` for the arguments.
    """
    x, y = _stacked(real, gen, reference_batches, other_batches)
    d = x.shape[2]

    def k_mean(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return ((np.einsum("kif,kjf->kij", a, c) / d + 1.0) ** degree).mean(axis=(1, 2))

    values = k_mean(x, x) + k_mean(y, y) - 2.0 * k_mean(x, y)
    return _batch_score(values, pool_size / x.shape[1])
