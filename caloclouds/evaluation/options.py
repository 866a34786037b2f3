"""Settings of the scoring that are not part of the run config's ``evaluation`` section.

The YAML ``evaluation`` section (:class:`caloclouds.config.EvaluationConfig`) fixes the cells, the
threshold, the bins and the high-level classifier; :class:`ScoringOptions` adds the floor, the
pass/fail limits, the energy breakdown, the spectrum check and the low-level classifier, set from
the command line (``caloclouds evaluate --help``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from caloclouds.evaluation.floor import Thresholds
from caloclouds.evaluation.impact import IMPACT_MODES
from caloclouds.evaluation.lowlevel import LowLevelConfig
from caloclouds.evaluation.spectrum import ENERGY_BINS_GEV, MIN_P_VALUE

__all__ = ["ScoringOptions"]


@dataclass(frozen=True)
class ScoringOptions:
    """How the scores are computed and judged (defaults: the README's measurements).

    W1 is averaged over ``w1_draws`` random batches of ``n // n_batches`` showers (n: the common
    sample size, ``n_batches`` from the run config); FPD and KPD at fixed size over ``pd_draws``
    random batches of ``n // pd_batch_divisor`` showers. With 1000 vs 1000 Geant4 showers these
    choices keep the ratio of two independent Geant4 samples to the floor within about ±10 %.

    ``impact`` says where each shower's axis hits the cells (:mod:`~caloclouds.evaluation.impact`):
    ``random`` (uniform within a cell, one position per shower, the default), ``corner`` or ``centre``.
    In each energy range, the AUCs of samples with fewer than ``min_judged_showers`` showers a side
    are shown but not judged.
    """

    thresholds: Thresholds = field(default_factory=Thresholds)  # Pass/fail limits.
    w1_draws: int = 50  # Random W1 batches per comparison.
    pd_batch_divisor: int = 20  # FPD/KPD batch size = n // this.
    pd_draws: int = 300  # Random FPD/KPD batches per comparison.
    low_level: LowLevelConfig | None = field(default_factory=LowLevelConfig)  # None: no low-level classifier.
    energy_bins_gev: tuple[tuple[float, float], ...] = ENERGY_BINS_GEV  # Ranges of the energy breakdown.
    min_spectrum_p: float = MIN_P_VALUE  # KS p-value below which spectra count as different.
    allow_spectrum_mismatch: bool = False  # Score clearly different spectra anyway (recorded, not refused).
    impact: str = "random"  # Impact position of each shower in its cell: random, corner or centre.
    min_judged_showers: int = 200  # Per-energy-range AUCs on fewer showers a side: shown, not judged.

    def __post_init__(self) -> None:
        for name in ("w1_draws", "pd_batch_divisor", "pd_draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for lo, hi in self.energy_bins_gev:
            if not lo < hi:
                raise ValueError(f"energy bin ({lo}, {hi}) GeV must have lo < hi")
        if self.impact not in IMPACT_MODES:
            raise ValueError(f"impact must be one of {', '.join(IMPACT_MODES)}, got {self.impact!r}")
        if not 0 <= self.min_spectrum_p < 1:
            raise ValueError(f"min_spectrum_p must be in [0, 1), got {self.min_spectrum_p}")
