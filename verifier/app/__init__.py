"""The application layer: the ``verifier`` commands and the batch machinery behind them.

* :mod:`.cli` -- the Click group ``main`` with ``verify`` / ``info`` / ``bounds``;
  :mod:`.commands_batch` -- ``batch`` and ``check``; :mod:`.render` -- what they print;
* :mod:`.tasks` -- :class:`~.tasks.Task` (one instance and its verify options) and ``Outcome``;
* :mod:`.workers` -- one isolated worker process per running instance, with a hard time limit;
* :mod:`.pool` -- the local scheduler; :mod:`.dask_backend` -- the Dask one;
* :mod:`.results_csv` -- the resumable results file; :mod:`.summary` -- per-benchmark summary;
* :mod:`.suite` -- instance lists, expected results and suite files; :mod:`.junit` -- JUnit XML;
* :mod:`.procenv` -- the environment worker processes are started with.

The core (model loading, bounds, MILP, search) is used only through ``verifier.verify``,
``verifier.load_model``, ``verifier.load_spec`` and ``verifier.query``.
"""
