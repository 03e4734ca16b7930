"""SSN training configs (Spatially Stochastic Networks, Hong et al. 2020).

    python -m jaxspatial.train --config configs/ssn.py:demo --workdir runs/ssn-demo
    python -m jaxspatial.train --config configs/ssn.py:demo --workdir runs/ssn-demo-l0 \
        --config.loss.distortion_weight=0
    python -m jaxspatial.train --config configs/ssn.py:paper256 --workdir runs/ffhq-ssn \
        --config.data.source=folder --config.data.path=/data/ffhq.zip \
        --config.init_from=models/ffhq      # a converted StyleGAN2: paper §3.4 transfer

Presets (the StyleGAN2 preset of the same name with the SSN generator on top, so the two
compare at equal size; except ``demo``, where the StyleGAN2 one is narrower for a fast CPU
run: give SSN ``--config.model.channel_max=32`` to transfer from it):

* ``tiny`` -- tests: 16 px, 4×4 latent grid;
* ``demo`` -- 32 px shapes scenes, 4×4 grid of 128-d blocks, λ_D = 100;
* ``paper256`` -- the paper: z 4×4×512, λ_D = 100, R1 γ = 1 and path length weight 2
  (SSN §3.2), stylegan2-ada paper256 otherwise (ADA included: ``augment.kind`` ada).

SSN keys: ``model.grid_h``/``grid_w`` (latent blocks; 8×8 works too), ``model.encoder_blocks``,
``model.style_upsample`` (nearest | bilinear), ``model.spatial_conditioning`` (modconv: the
paper's spatially modulated conv | spade | adain: appendix A's droplet-prone layers, trained
from scratch); ``loss.distortion_weight`` (λ_D),
``loss.distortion_reduction`` (mean: per-pixel, the Table-2 scale | sum: eq. 2 literally),
``loss.distortion_batch_shrink``; ``init_from``: a StyleGAN2 or SSN checkpoint directory to
start from (``jaxspatial.training.ssn.transfer_init_models``), empty for a fresh start.
"""

from jaxspatial.models.ssn import ssn_model_config
from jaxspatial.training import config_lib

_SG2_KEYS = ("z_dim", "w_dim", "n_mlp", "channel_multiplier", "channel_base", "channel_max",
             "mbstd_group_size")


def get_config(preset: str = "demo"):
  """Returns the SSN config for ``preset`` (tiny | demo | paper256)."""
  preset = preset or "demo"
  config = config_lib.gan_config(preset)
  sg2 = config_lib.stylegan2_model(preset)
  config.model = ssn_model_config(sg2.resolution, grid=(4, 4),
                                  **{k: sg2[k] for k in _SG2_KEYS})
  config.loss.update(dict(distortion_weight=100.0, distortion_reduction="mean",
                          distortion_batch_shrink=1))
  if preset == "paper256":
    config.loss.update(r1_gamma=1.0, pl_weight=2.0)
  return config
