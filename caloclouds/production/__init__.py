"""Large productions: millions of showers as resumable shards on a Dask cluster (``caloclouds produce``).

It sits above :mod:`caloclouds.generation` and :mod:`caloclouds.io`, which never import it:

* :mod:`~caloclouds.production.plan`: the request, the shards and their seeds;
* :mod:`~caloclouds.production.shard`: one shard on a worker (the ``generate`` code path);
* :mod:`~caloclouds.production.manifest`: ``production.json``, the model's SHA-256, resume checks;
* :mod:`~caloclouds.production.runner`: the shards that are missing, on a Dask client;
* :mod:`~caloclouds.production.cluster`: ``LocalCluster``, a scheduler address, Slurm or HTCondor;
* :mod:`~caloclouds.production.merge`: the shards read as one dataset, ``info`` and ``merge``.

Dask (``distributed``) and dask-jobqueue are the optional extra ``production``; nothing here imports
them at module level.
"""
