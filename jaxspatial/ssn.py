"""``js.ssn``: SSN's public names, wherever their code lives.

    import jaxspatial as js
    m = js.load("runs/ssn")                                  # an SSNModel
    z2 = js.ssn.resample_blocks(m.sample_z(3, 1), [(0, 1)], seed=7)
    js.ssn.distortion(m, num_samples=256)                    # Table-2 distortion with a 95% CI

Latents and the model: :mod:`jaxspatial.api.ssn`; the metric:
:mod:`jaxspatial.metrics.distortion`; the Flax modules: :mod:`jaxspatial.models.ssn`.
"""

from jaxspatial.api.ssn import SSNModel, resample_blocks, sample_z
from jaxspatial.metrics.distortion import distortion

__all__ = ["SSNModel", "distortion", "resample_blocks", "sample_z"]
