"""Low-level classifier two-sample test on the cells of each shower (a point-set network).

Where the high-level classifier sees 25 summary numbers per shower, this one sees every cell
above threshold as a point ``(x, y, layer, e)`` and learns to tell generated from reference
showers from the point sets themselves, as the CaloChallenge low-level classifier does for
voxels. The network is a DeepSets / PointNet-style set function built from torch-geometric
parts, which run in plain PyTorch (no compiled extension, CPU):

* a per-cell MLP ``phi`` (``torch_geometric.nn.MLP``) on the standardised cell features
  ``x, y, r, layer, log e`` (r is the distance to the nominal shower axis);
* a permutation-invariant readout ``MultiAggregation(mean, max, std)`` over each shower's cells
  (``torch_geometric.nn.aggr``), concatenated with the standardised ``log E_inc`` and
  ``log(number of cells)`` of the shower, and, for showers with a direction of incidence,
  ``theta_deg, cos phi, sin phi`` (:data:`DIRECTION_FEATURES`, equal in both samples' spectra);
* a classifier MLP ``rho`` to one logit.

The k-fold protocol is the high-level one (:mod:`~caloclouds.evaluation.classifier`): fold i is
the test set, fold i+1 the validation set (the epoch with the lowest validation loss is kept), the
other folds train; the score is the mean +- std of the test AUC over the folds. Features are
standardised with both samples together (no labels involved). Fixed seeds: the same inputs give
the same AUC.

References:
    Zaheer et al., "Deep Sets", NeurIPS 2017, arXiv:1703.06114; Qi et al., "PointNet",
    CVPR 2017, arXiv:1612.00593; Krause et al., "CaloChallenge 2022: a community challenge for
    fast calorimeter simulation", arXiv:2410.21611 (low-level classifier).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from caloclouds.evaluation.classifier import ClassifierResult, roc_auc
from caloclouds.evaluation.observables import CellObservables, direction_features
from caloclouds.showers import ragged_take, shower_index

__all__ = ["LowLevelConfig", "CellSets", "cell_sets", "low_level_auc"]

#: Per-cell input columns (after standardisation).
CELL_FEATURES = ("x_mm", "y_mm", "r_mm", "layer", "log_e_mev")
#: Per-shower input columns appended to the pooled cell summary.
SHOWER_FEATURES = ("log_incident_energy_gev", "log_n_cells")
#: Per-shower columns added when both samples carry a direction of incidence.
DIRECTION_FEATURES = ("theta_deg", "cos_phi", "sin_phi")


@dataclass(frozen=True)
class LowLevelConfig:
    """Settings of the low-level (per-cell) classifier.

    The defaults run 1000 vs 1000 ILD photon showers (about 0.5 M cells) in about 2 minutes on
    one CPU core (see the README's validation section).
    """

    folds: int = 5  # k of the k-fold test (>= 3: test, validation, training).
    hidden: int = 32  # Width of the per-cell and per-shower MLPs.
    epochs: int = 12  # Epochs per fold; the epoch with the best validation loss is kept.
    batch_size: int = 32  # Showers per optimiser step.
    learning_rate: float = 2e-3  # Adam learning rate.
    seed: int = 42  # Seed of the folds, the weight initialisation and the batches.

    def __post_init__(self) -> None:
        if self.folds < 3:
            raise ValueError(f"low-level folds must be >= 3 (test, validation, training), got {self.folds}")
        for name in ("hidden", "epochs", "batch_size", "learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"low-level {name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class CellSets:
    """The cells of N showers as a flat point set: the classifier's input.

    Attributes:
        cells: (H, 5) float32 per-cell columns :data:`CELL_FEATURES` (raw, not standardised).
        offsets: (N+1,) int64, shower i owns ``cells[offsets[i]:offsets[i+1]]``.
        showers: (N, 2) float32 per-shower columns :data:`SHOWER_FEATURES` (raw), or (N, 5) with
            :data:`DIRECTION_FEATURES` after them.
    """

    cells: np.ndarray
    offsets: np.ndarray
    showers: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1


def cell_sets(obs: CellObservables) -> CellSets:
    """The point set of every shower from its cell observables (cells above threshold)."""
    e = np.maximum(np.asarray(obs.hit_e_mev, dtype=np.float64), 1e-12)
    cells = np.column_stack(
        [obs.hit_x_mm, obs.hit_y_mm, obs.hit_r_mm, obs.hit_layer.astype(np.float64), np.log(e)]
    ).astype(np.float32)
    columns = [np.log(np.asarray(obs.incident_energy_gev, dtype=np.float64)), np.log1p(obs.n_hits.astype(np.float64))]
    direction = direction_features(obs)
    if direction is not None:
        columns.append(direction)
    showers = np.column_stack(columns).astype(np.float32)
    return CellSets(cells, np.asarray(obs.hit_offsets, dtype=np.int64), showers)


def _concatenate(a: CellSets, b: CellSets) -> CellSets:
    if a.showers.shape[1] != b.showers.shape[1]:
        raise ValueError(
            "one sample carries a direction of incidence (theta_deg, phi_deg) and the other not: "
            "the low-level classifier needs the same conditions on both sides"
        )
    offsets = np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]])
    return CellSets(np.concatenate([a.cells, b.cells]), offsets, np.concatenate([a.showers, b.showers]))


def _standardise(values: np.ndarray) -> np.ndarray:
    mean, std = values.mean(0), values.std(0)
    return ((values - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def _build_model(hidden: int, n_shower_features: int = len(SHOWER_FEATURES)) -> Any:
    """phi (per cell) -> mean/max/std readout per shower (+ shower features) -> rho -> logit."""
    import torch
    from torch_geometric.nn import MLP
    from torch_geometric.nn.aggr import MultiAggregation

    class PointSetClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.phi = MLP([len(CELL_FEATURES), hidden, hidden, hidden], act="leaky_relu", norm=None)
            self.readout = MultiAggregation(["mean", "max", "std"])
            self.rho = MLP([3 * hidden + n_shower_features, hidden, 1], act="leaky_relu", norm=None)

        def forward(self, cells: torch.Tensor, batch: torch.Tensor, showers: torch.Tensor) -> torch.Tensor:
            pooled = self.readout(self.phi(cells), batch, dim_size=len(showers))
            return self.rho(torch.cat([pooled, showers], dim=1)).squeeze(1)

    return PointSetClassifier()


class _Batcher:
    """Gathers the cells of any set of showers into one flat tensor plus its batch vector."""

    def __init__(self, sets: CellSets) -> None:
        import torch

        self.cells = torch.as_tensor(_standardise(sets.cells))
        self.showers = torch.as_tensor(_standardise(sets.showers))
        self.offsets = sets.offsets

    def __call__(self, idx: np.ndarray) -> tuple[Any, Any, Any]:
        import torch

        cell_idx, offsets = ragged_take(self.offsets, idx)
        batch = shower_index(offsets)
        return self.cells[torch.as_tensor(cell_idx)], torch.as_tensor(batch), self.showers[torch.as_tensor(idx)]


def _logits(model: Any, batcher: _Batcher, idx: np.ndarray, chunk: int = 256) -> Any:
    import torch

    with torch.no_grad():
        return torch.cat([model(*batcher(idx[k : k + chunk])) for k in range(0, len(idx), chunk)])


def _train_and_score(
    batcher: _Batcher,
    y: Any,
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    *,
    config: LowLevelConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Train on ``train``, keep the best epoch on ``val``, return the test logits."""
    import torch

    model = _build_model(config.hidden, int(batcher.showers.shape[1]))
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best_loss, best_state = float("inf"), None
    for _ in range(config.epochs):
        model.train()
        order = rng.permutation(train)
        for k in range(0, len(order), config.batch_size):
            idx = order[k : k + config.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(*batcher(idx)), y[idx])
            loss.backward()
            optimiser.step()
        model.eval()
        val_loss = float(loss_fn(_logits(model, batcher, val), y[val]))
        if val_loss < best_loss:
            best_loss, best_state = val_loss, {k: v.clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return _logits(model, batcher, test).numpy().astype(np.float64)


def low_level_auc(
    reference: CellObservables,
    generated: CellObservables,
    *,
    config: LowLevelConfig | None = None,
) -> ClassifierResult:
    """k-fold AUC of the point-set classifier between two sets of showers.

    Args:
        reference: cell observables of the reference showers (label 0).
        generated: cell observables of the generated showers (label 1).
        config: classifier settings (default :class:`LowLevelConfig`).

    Returns:
        The :class:`~caloclouds.evaluation.classifier.ClassifierResult` (test AUC per fold).
    """
    import torch

    config = LowLevelConfig() if config is None else config
    n_ref, n_gen = len(reference), len(generated)
    if n_ref + n_gen < 2 * config.folds:
        raise ValueError(f"need at least {2 * config.folds} showers for {config.folds} folds, got {n_ref + n_gen}")
    batcher = _Batcher(_concatenate(cell_sets(reference), cell_sets(generated)))
    labels = np.concatenate([np.zeros(n_ref), np.ones(n_gen)])
    y = torch.as_tensor(labels, dtype=torch.float32)
    rng = np.random.default_rng(config.seed)
    fold_of = rng.permutation(len(labels)) % config.folds
    from tqdm.auto import tqdm

    aucs = []
    with torch.random.fork_rng(devices=[]):
        for i in tqdm(range(config.folds), desc="low-level classifier folds", disable=None, leave=False):
            torch.manual_seed(config.seed + i)
            test = np.flatnonzero(fold_of == i)
            val = np.flatnonzero(fold_of == (i + 1) % config.folds)
            train = np.flatnonzero((fold_of != i) & (fold_of != (i + 1) % config.folds))
            logits = _train_and_score(
                batcher, y, train, val, test, config=config, rng=np.random.default_rng(config.seed + i)
            )
            aucs.append(roc_auc(labels[test], logits))
    return ClassifierResult(tuple(aucs), n_ref, n_gen)
