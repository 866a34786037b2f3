"""What every training shares: the step loop (:mod:`caloclouds.training.loop`) and the run folder with
its checkpoint header (:mod:`caloclouds.training.rundir`). Used by the Shower Flow (``flows/``), the
PointWise Net and CM (``caloclouds/diffusion/``) and the voxel models (``caloclouds/voxel/``); imports
none of them. Time budget, clean stop on signals, learning-rate schedules and the metrics files are
in :mod:`caloclouds.runcontrol`.
"""
