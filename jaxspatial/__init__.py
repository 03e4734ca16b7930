"""jaxspatial: spatially controllable GANs in JAX.

    import jaxspatial as js
    m = js.load("runs/demo")          # any checkpoint dir from train or convert_torch
    x = m.generate(m.sample_z(0, 4))  # (4, H, W, 3) float32 in [-1, 1]
"""

from jaxspatial.model import GeneratorModel, Model, load

__version__ = "0.1.0"
version = __version__

__all__ = ["GeneratorModel", "Model", "load", "version"]
