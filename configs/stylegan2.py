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
"""

from jaxspatial.training import config_lib


def get_config(preset: str = "demo"):
  """Returns the StyleGAN2 config for ``preset`` (tiny | demo | paper256)."""
  preset = preset or "demo"
  config = config_lib.gan_config(preset)
  config.model = config_lib.stylegan2_model(preset)
  if preset == "demo":
    config.model.channel_max = 32
    config.batch_size = 8
    config.optim.update(g_lr=0.005, d_lr=0.005)
    config.total_steps, config.checkpoint_every, config.sample_every = 12000, 2000, 1000
  return config
