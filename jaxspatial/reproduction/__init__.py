"""The papers' claims reproduced at small scale, one target per claim, several seeds each.

``python -m jaxspatial.reproduce NAME`` (:mod:`jaxspatial.reproduce`) runs a target: it trains
the runs that are missing through the library's trainer (reusing or resuming those it finds
under ``--runs``), evaluates them with the metric registry and writes
``docs/reproduction/NAME.md``: mean ± 95 % Student-t interval per setting across seeds, every
run's numbers, the exact train/evaluate commands, wall times and a figure.

This is a layer beside :mod:`jaxspatial.benchmarks` (it drives training, loads models and runs
metrics, so it sits above all of them); the command only parses and calls. Pieces:
:mod:`.runs` (run specs, reuse, timing, cached evaluation), :mod:`.report` (intervals, the
page, the SVG figure) and one module per target (:mod:`.ssn`, :mod:`.spatialgan`,
:mod:`.drag`, :mod:`.regressor`). Each target's docstring states the run lengths of its ``small`` scale.
"""

TARGETS: dict[str, str] = {
    "ssn-lambda": "jaxspatial.reproduction.ssn:reproduce",
    "spatialgan-comove": "jaxspatial.reproduction.spatialgan:reproduce",
    "drag-table2": "jaxspatial.reproduction.drag:reproduce",
    "regressor-table3": "jaxspatial.reproduction.regressor:reproduce_table3",
    "regressor-edits": "jaxspatial.reproduction.regressor:reproduce_edits",
}
"""name -> ``module:function(session, out) -> page path``."""

SCALES = ("small", "smoke")
