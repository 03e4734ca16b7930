"""``js.regressor``: the latent regressor's public names, wherever their code lives.

    import jaxspatial as js
    r = js.load("runs/regressor")                  # a RegressorModel
    y = r.composite([(x1, m1), (x2, m2)])          # G(E(collage, ∪ m))

The model: :mod:`jaxspatial.api.regressor`; the Flax encoder: :mod:`jaxspatial.models.regressor`;
its losses: :mod:`jaxspatial.losses.regressor`.
"""

from jaxspatial.api.regressor import (RegressorModel, VariationMap, load_regressor,
                                      regressor_config)

__all__ = ["RegressorModel", "VariationMap", "load_regressor", "regressor_config"]
