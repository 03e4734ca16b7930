"""jaxspatial: spatially controllable GANs in JAX.

    import jaxspatial as js
    m = js.load("runs/demo")          # any checkpoint dir from train or convert_torch
    x = m.generate(m.sample_z(0, 4))  # (4, H, W, 3) float32 in [-1, 1]
"""

import importlib

from jaxspatial.api.model import GeneratorModel, Model, load

__version__ = "0.1.0"
version = __version__

# Public namespaces, imported on first attribute access (js.ssn.resample_blocks,
# js.spatialgan.Heatmaps, js.regressor, js.metrics); they gather names from the layers.
_SUBMODULES = ("ssn", "spatialgan", "regressor", "metrics")


def __getattr__(name: str):
  if name in _SUBMODULES:
    return importlib.import_module(f"jaxspatial.{name}")
  raise AttributeError(f"module 'jaxspatial' has no attribute {name!r}")


__all__ = ["GeneratorModel", "Model", "load", "version", *_SUBMODULES]
