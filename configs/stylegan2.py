"""StyleGAN2 training configs.

    python -m jaxspatial.train --config configs/stylegan2.py:demo --workdir runs/sg2-demo
    python -m jaxspatial.train --config configs/stylegan2.py:paper256 --workdir gs://bucket/ffhq \
        --config.data.source=folder --config.data.path=/data/ffhq.zip

Presets: ``tiny`` (tests: 16 px, a few channels), ``demo`` (32 px shapes, ~10 minutes on 2
CPU cores), ``paper256`` (stylegan2-ada "paper256", as used by EqGAN-SA, with its default ADA:
``augment.kind`` ada, the bgc pipe, target 0.6, 500 kimg; ``--config.augment.kind=none`` turns it
off). ``tiny`` and ``demo`` augment nothing unless asked (``--config.augment.kind=ada``).
``--config.freeze_d=N`` keeps the discriminator's first N layers fixed (stylegan2-ada's
``--freezed``), for fine-tuning from ``--config.init_from``.

The StyleGAN2 ``demo`` is tuned for a short CPU run (README, docs/benchmarks.md): 32 channels
at every resolution (``channel_max`` 32 instead of the other families' 64: ~2x the images/s),
batch 8 and lr 0.005, 12000 steps (96 kimg). To start an SSN or SpatialGAN ``demo`` from it
(``--config.init_from=runs/demo``) give that run the same width: ``--config.model.channel_max=32``.

Mixed precision: stylegan2-ada's train.py runs every ``--cfg`` (paper256 included) with
``num_fp16_res=4`` and ``conv_clamp=256`` (``--fp32`` turns both off). Our ``paper256`` keeps
neither (``model.mixed_precision_res`` 0, ``conv_clamp`` None): the clamp changes what the
network computes and reduced precision how, and the preset's documented runs and parity tests
are float32 without a clamp. On an accelerator, stylegan2-ada's setting is
``--config.model.conv_clamp=256 --config.model.mixed_precision_res=4`` (bfloat16 at 32-256 px,
docs/scaling.md); the same flags apply to the SSN and SpatialGAN presets.

Every value of a preset is set here, on top of ``config_lib.base_config`` (the shared defaults:
stylegan2-ada paper256's optimiser, R1, path length, style mixing and EMA).
"""

from jaxspatial.models import stylegan2_model_config
from jaxspatial.training import config_lib

PRESETS = config_lib.PRESETS


def get_config(preset: str = "demo"):
  """The StyleGAN2 config for ``preset`` (tiny | demo | paper256)::

      python -m jaxspatial.train --config configs/stylegan2.py:demo --workdir runs/sg2-demo
  """
  preset = config_lib.check_preset(preset, PRESETS)
  c = config_lib.base_config(preset)
  if preset == "tiny":
    c.batch_size, c.total_steps = 8, 4
    c.checkpoint_every, c.log_every, c.sample_every = 2, 1, 0
    c.data = config_lib.data_config(16)
    c.loss.update(r1_gamma=0.1, r1_every=2, pl_every=2, pl_batch_shrink=1)
    c.ema_kimg = 0.01
    c.num_samples = 4
    c.model = stylegan2_model_config(16, z_dim=32, w_dim=32, n_mlp=2, channel_base=256,
                                     channel_max=32, mbstd_group_size=4)
  elif preset == "demo":
    c.batch_size, c.total_steps = 8, 12000                 # 96 kimg
    c.checkpoint_every, c.log_every, c.sample_every = 2000, 25, 1000
    c.data = config_lib.data_config(32)
    c.optim.update(g_lr=0.005, d_lr=0.005)
    c.loss.update(r1_gamma=0.05, r1_every=16, pl_weight=0.0, style_mixing=0.0)
    c.ema_kimg, c.ema_rampup = 2.0, 0.05
    c.model = stylegan2_model_config(32, z_dim=64, w_dim=64, n_mlp=2, channel_base=1024,
                                     channel_max=32, mbstd_group_size=4)
  else:  # stylegan2-ada train.py cfg_specs['paper256']: mb=64, kimg=25000, fmaps=0.5, mbstd=8,
    #      lrate=0.0025, gamma=1, ema=20, ramp=None, map=8 (the rest: base_config)
    c.batch_size, c.total_steps = 64, 400_000      # 25,600 kimg
    c.checkpoint_every, c.log_every, c.sample_every = 5_000, 100, 5_000
    c.data = config_lib.data_config(256, source="folder")
    c.loss.update(r1_gamma=1.0, pl_weight=2.0)
    c.ema_kimg = 20.0
    c.augment.kind = "ada"      # stylegan2-ada's --aug=ada default: bgc, target 0.6, 500 kimg
    c.model = stylegan2_model_config(256, channel_base=16384, channel_max=512,   # fmaps 0.5
                                     mbstd_group_size=8)
  return c
