"""The papers' claims reproduced at small scale, as units of a committed results ledger.

``python -m jaxspatial.reproduce`` (:mod:`jaxspatial.reproduce`) runs **units**: one (target,
setting, seed) trains what it needs through the library's trainer (reusing or resuming runs
it finds in the local cache ``runs/``), measures them with the metric registry and the edit
layer, and writes one JSON row to ``docs/reproduction/results/<target>/`` (:mod:`.ledger`).
Pages (``docs/reproduction/<target>.md``: mean ± 95 % Student-t interval per setting across
seeds, paired differences where the design is paired, every unit's numbers, the exact
commands, wall times, a figure) are rebuilt from the rows alone, so units run on different
machines and days add up to one page.

This is a layer beside :mod:`jaxspatial.benchmarks` (it drives training, loads models and runs
metrics, so it sits above all of them); the command only parses and calls. Pieces:
:mod:`.ledger` (rows), :mod:`.runs` (run specs, reuse, timing, cached evaluation, the
:class:`~.runs.Target` declaration), :mod:`.campaign` (units, priority, budget, status,
pages), :mod:`.report` (intervals, paired differences, the page, the SVG figure) and one module
per claim (:mod:`.spatialgan`, :mod:`.drag`, :mod:`.ssn`, :mod:`.regressor`). Each target's
docstring states the run lengths of its ``small`` scale.
"""
