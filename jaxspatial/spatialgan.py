"""``js.spatialgan``: SpatialGAN's public names, wherever their code lives.

    import jaxspatial as js
    m = js.load("runs/spatialgan-demo")            # a SpatialGANModel
    h = m.sample_heatmaps(5, 1)                    # a js.spatialgan.Heatmaps
    after = m.generate(m.sample_z(5, 1), heatmaps=h.move(0, 0.3, -0.2))

The model: :mod:`jaxspatial.api.spatialgan`; heatmaps and the Flax modules:
:mod:`jaxspatial.models.heatmaps`, :mod:`jaxspatial.models.spatialgan`.
"""

from jaxspatial.api.spatialgan import SpatialGANModel
from jaxspatial.models.heatmaps import Heatmaps
from jaxspatial.models.spatialgan import transfer_from_stylegan2

__all__ = ["Heatmaps", "SpatialGANModel", "transfer_from_stylegan2"]
