"""Classifier two-sample test on the high-level features (CaloClouds II, Sec. 5.4).

A small MLP (F -> 32 -> 16 -> 1, LeakyReLU(0.2)) learns to tell generated from reference showers.
With k folds, fold i is the test set, fold i+1 the validation set (the epoch with the best
validation loss is kept) and the other k-2 folds are the training set. The score is the mean +-
std of the test ROC AUC over the folds: 0.5 means the classifier cannot tell the samples apart.

Features are standardised with the mean and std of both samples together (no labels involved).
Everything runs on the CPU with a fixed seed, so the same inputs give the same AUC.

References:
    Buss et al., arXiv:2309.05704 (CaloClouds II), Sec. 5.4; Lopez-Paz and Oquab, "Revisiting
    classifier two-sample tests", ICLR 2017, arXiv:1610.06545.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ClassifierResult", "roc_auc", "classifier_auc"]


@dataclass(frozen=True)
class ClassifierResult:
    """Test AUC per fold and its mean and std."""

    fold_auc: tuple[float, ...]
    n_reference: int
    n_generated: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_auc))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_auc))

    def to_dict(self) -> dict[str, object]:
        return {
            "value": self.mean,
            "error": self.std,
            "folds": [float(a) for a in self.fold_auc],
            "n_reference": self.n_reference,
            "n_generated": self.n_generated,
        }


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg), ties counted half)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both classes for an AUC, got {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classifier_auc(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    folds: int = 10,
    hidden: tuple[int, ...] = (32, 16),
    epochs: int = 30,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    seed: int = 42,
) -> ClassifierResult:
    """k-fold classifier AUC between two feature samples.

    Args:
        reference: (N_r, F) features of the reference showers (label 0).
        generated: (N_g, F) features of the generated showers (label 1).
        folds: number of folds k >= 3 (test, validation and at least one training fold).
        hidden: widths of the hidden layers.
        epochs: training epochs per fold; the epoch with the lowest validation loss is used.
        batch_size: showers per optimiser step.
        learning_rate: Adam learning rate.
        seed: seed of the shuffling, the weight initialisation and the batches.

    Returns:
        The :class:`ClassifierResult`.
    """
    import torch

    if folds < 3:
        raise ValueError(f"folds must be >= 3 (test, validation, training), got {folds}")
    x = np.concatenate([reference, generated]).astype(np.float64)
    y = np.concatenate([np.zeros(len(reference)), np.ones(len(generated))])
    if len(x) < 2 * folds:
        raise ValueError(f"need at least {2 * folds} showers for {folds} folds, got {len(x)}")
    mean, std = x.mean(0), x.std(0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(x)) % folds  # balanced folds of random showers
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 25-32-16-1 MLP is slower with several threads; restored below
    try:
        aucs = _run_folds(
            xt,
            yt,
            y,
            fold_of,
            folds=folds,
            seed=seed,
            hidden=hidden,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
        )
    finally:
        torch.set_num_threads(threads)
    return ClassifierResult(tuple(aucs), len(reference), len(generated))


def _run_folds(
    xt: Any,
    yt: Any,
    y: np.ndarray,
    fold_of: np.ndarray,
    *,
    folds: int,
    seed: int,
    hidden: tuple[int, ...],
    epochs: int,
    batch_size: int,
    learning_rate: float,
) -> list[float]:
    """Train and test one network per fold; returns the test AUC of each fold."""
    import torch
    from tqdm.auto import tqdm

    aucs = []
    for i in tqdm(range(folds), desc="classifier folds", disable=None, leave=False):  # k trainings of a tiny network
        test = np.flatnonzero(fold_of == i)
        val = np.flatnonzero(fold_of == (i + 1) % folds)
        train = np.flatnonzero((fold_of != i) & (fold_of != (i + 1) % folds))
        if len(np.unique(y[test])) < 2:
            continue
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + i)
            scores = _train_and_score(
                xt,
                yt,
                train,
                val,
                test,
                hidden=hidden,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
            )
        aucs.append(roc_auc(y[test], scores))
    return aucs


def _train_and_score(
    x: Any,
    y: Any,
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    *,
    hidden: tuple[int, ...],
    epochs: int,
    batch_size: int,
    learning_rate: float,
) -> np.ndarray:
    """Train one MLP on ``train``, keep the best epoch on ``val``, return logits on ``test``."""
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    width = x.shape[1]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
        width = h
    model = nn.Sequential(*layers, nn.Linear(width, 1))
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, foreach=True)
    loss_fn = nn.BCEWithLogitsLoss()
    tr = torch.as_tensor(train)
    xv, yv = x[val], y[val]
    best_loss, best_state = float("inf"), None
    for _ in range(epochs):
        model.train()
        for batch in tr[torch.randperm(len(tr))].split(batch_size):
            optimiser.zero_grad()
            loss = loss_fn(model(x[batch]).squeeze(1), y[batch])
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(xv).squeeze(1), yv))
        if val_loss < best_loss:
            best_loss = val_loss
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    with torch.no_grad():
        return model(x[test]).squeeze(1).numpy().astype(np.float64)
