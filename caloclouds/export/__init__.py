"""Export of a model bundle for use outside Python (DDML in Geant4/key4hep): TorchScript and ONNX.

* :mod:`.flow`: the Shower Flow's sampling path in pure torch (TorchScript).
* :mod:`.points`: the point-model stage, one scriptable module per kind of PointWise Net.
* :mod:`.pipeline`: the single-shower pipeline with DDML's CaloClouds calling convention.
* :mod:`.torchscript`: ``export_torchscript``, ``load_export``, ``decode_output`` and the metadata.
* :mod:`.onnx`: what of the pipeline ONNX can express, exported and checked with onnxruntime.
* :mod:`.bench`: ``bench_torchscript``, the export's speed called from Python (``caloclouds bench``).

Nothing here is imported by ``import caloclouds``.
"""

from __future__ import annotations

__all__: list[str] = []
