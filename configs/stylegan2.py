"""StyleGAN2 training configs.

    python -m jaxspatial.train --config configs/stylegan2.py:demo --workdir runs/sg2-demo
    python -m jaxspatial.train --config configs/stylegan2.py:paper256 --workdir gs://bucket/ffhq \
        --config.data.source=folder --config.data.path=/data/ffhq.zip

Presets: ``tiny`` (tests: 16 px, a few channels), ``demo`` (32 px shapes, 3600 steps,
~12 minutes on 2 CPU cores), ``paper256`` (stylegan2-ada "paper256", as used by EqGAN-SA).
"""

from jaxspatial.training import config_lib


def get_config(preset: str = "demo"):
  """Returns the StyleGAN2 config for ``preset`` (tiny | demo | paper256)."""
  preset = preset or "demo"
  config = config_lib.gan_config(preset)
  config.model = config_lib.stylegan2_model(preset)
  if preset == "demo":   # 12 min on 2 CPU cores (README); the other families keep 900 steps
    config.total_steps, config.checkpoint_every, config.sample_every = 3600, 600, 300
  return config
