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
  (SSN §3.2), stylegan2-ada paper256 otherwise (ADA included: ``augment.kind`` ada), except
  its mixed precision, off as in configs/stylegan2.py (which says why and how to turn it on).

SSN keys: ``model.grid_h``/``grid_w`` (latent blocks; 8×8 works too), ``model.encoder_blocks``,
``model.style_upsample`` (nearest | bilinear), ``model.spatial_conditioning`` (modconv: the
paper's spatially modulated conv | spade | adain: appendix A's droplet-prone layers, trained
from scratch); ``loss.distortion_weight`` (λ_D),
``loss.distortion_reduction`` (mean: per-pixel, the Table-2 scale | sum: eq. 2 literally),
``loss.distortion_batch_shrink``; ``init_from``: a StyleGAN2 or SSN checkpoint directory to
start from (``jaxspatial.training.ssn.transfer_init_models``), empty for a fresh start.

Every value of a preset is set here, on top of ``config_lib.base_config`` (the shared defaults:
stylegan2-ada paper256's optimiser, R1, path length, style mixing and EMA).
"""

from jaxspatial.models.ssn import ssn_model_config
from jaxspatial.training import config_lib

PRESETS = config_lib.PRESETS


def get_config(preset: str = "demo"):
  """The SSN config for ``preset`` (tiny | demo | paper256)::

      python -m jaxspatial.train --config configs/ssn.py:demo --workdir runs/ssn-demo
  """
  preset = config_lib.check_preset(preset, PRESETS)
  c = config_lib.base_config(preset)
  # λ_D = 100 on the per-pixel mean R_D: a loss of order one at the paper's Table-2 scale
  # (docs/ssn.md), in every preset.
  c.loss.update(distortion_weight=100.0, distortion_reduction="mean", distortion_batch_shrink=1)
  if preset == "tiny":
    c.batch_size, c.total_steps = 8, 4
    c.checkpoint_every, c.log_every, c.sample_every = 2, 1, 0
    c.data = config_lib.data_config(16)
    c.loss.update(r1_gamma=0.1, r1_every=2, pl_every=2, pl_batch_shrink=1)
    c.ema_kimg = 0.01
    c.num_samples = 4
    c.model = ssn_model_config(16, grid=(4, 4), z_dim=32, w_dim=32, n_mlp=2, channel_base=256,
                               channel_max=32, mbstd_group_size=4)
  elif preset == "demo":
    c.batch_size, c.total_steps = 16, 900
    c.checkpoint_every, c.log_every, c.sample_every = 300, 25, 150
    c.data = config_lib.data_config(32)
    c.loss.update(r1_gamma=0.05, r1_every=16, pl_weight=0.0, style_mixing=0.0)
    c.ema_kimg, c.ema_rampup = 2.0, 0.05
    c.model = ssn_model_config(32, grid=(4, 4), z_dim=64, w_dim=64, n_mlp=2,   # 128-d blocks
                               channel_base=1024, channel_max=64, mbstd_group_size=4)
  else:  # stylegan2-ada train.py cfg_specs['paper256'] (mb=64, kimg=25000, fmaps=0.5, mbstd=8,
    #      lrate=0.0025, ema=20, map=8) with SSN's §3.2 regularisation
    c.batch_size, c.total_steps = 64, 400_000      # 25,600 kimg
    c.checkpoint_every, c.log_every, c.sample_every = 5_000, 100, 5_000
    c.data = config_lib.data_config(256, source="folder")
    c.loss.update(r1_gamma=1.0, pl_weight=2.0)     # SSN §3.2: R1 γ = 1, path length weight 2
    c.ema_kimg = 20.0
    c.augment.kind = "ada"      # stylegan2-ada's --aug=ada default: bgc, target 0.6, 500 kimg
    c.model = ssn_model_config(256, grid=(4, 4),   # SSN: z 4×4×512
                               channel_base=16384, channel_max=512, mbstd_group_size=8)
  return c
