"""Inference: ``js.load`` and one model class per family (numpy in, numpy out).

:mod:`.model` (``load``, ``Model``, ``GeneratorModel``), :mod:`.checkpoint` (the on-disk model
directory, shared with training and conversion), :mod:`.ssn`, :mod:`.spatialgan`,
:mod:`.regressor`. Nothing here imports :mod:`jaxspatial.training`.
"""
