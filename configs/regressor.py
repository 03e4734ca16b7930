r"""Latent-regressor training configs (Chai, Wulff & Isola 2021) against a frozen generator.

    python -m jaxspatial.train --config configs/regressor.py:demo --workdir runs/reg-demo \
        --config.generator=runs/sg2-demo
    python -m jaxspatial.train --config configs/regressor.py:demo --workdir runs/reg-rgb \
        --config.generator=runs/sg2-demo --config.model.use_mask=False     # RGB-only ablation
    python -m jaxspatial.train --config configs/regressor.py:demo --workdir runs/reg-ssn \
        --config.generator=runs/ssn-demo                                   # an SSN's block grid
    python -m jaxspatial.train --config configs/regressor.py:paper256 --workdir runs/church \
        --config.generator=converted/church256

``generator`` is any ``js.load``-able StyleGAN2, SSN or SpatialGAN directory (trained here or
converted from PyTorch); what E predicts is its family's (W+; an SSN's W+ grid of block styles;
a SpatialGAN's W+ and heatmap centres and sigmas: ``jaxspatial.losses.regressor``). Its ``model``
section and ``g_ema`` are bundled into the regressor checkpoint
(``jaxspatial.training.regressor.attach_generator``), so ``js.load(workdir)`` alone gives a ready
``invert/composite/inpaint``. Training uses generated samples only; ``data`` is kept for the
shared layout (and evaluation collages on shapes). ``loss.center_weight`` and
``loss.sigma_weight`` weight a SpatialGAN regressor's heatmap terms (unused otherwise).

Presets:

* ``tiny`` -- tests: ResNet-18 of width 8, no LPIPS, 4 steps (for a ``tiny`` generator);
* ``demo`` -- CPU minutes: ResNet-18 of width 32 on a ``demo`` generator (32 px);
* ``paper256`` -- the official StyleGAN2 encoder: ResNet-34 on 256 px input, batch 16,
  680k steps, Adam 1e-4 betas (0.5, 0.999), MSE + LPIPS(VGG at 256 px) + latent MSE.

LPIPS uses the converted ``lpips-vgg`` weights (``python -m jaxspatial.convert_torch --net
lpips-vgg``); without them training stops with a message naming the file, or train without it
explicitly: ``--config.loss.lpips_weight=0``.
"""

import ml_collections

from jaxspatial.training import compile_cache, config_lib

PRESETS = ("tiny", "demo", "paper256")


def get_config(preset: str = "demo"):
  """The regressor config for ``preset`` (tiny | demo | paper256)::

      python -m jaxspatial.train --config configs/regressor.py:demo --workdir runs/reg-demo \\
          --config.generator=runs/sg2-demo
  """
  preset = config_lib.check_preset(preset, PRESETS)
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.generator = ""                     # DIR of the frozen generator (required)
  c.mesh = ml_collections.ConfigDict(dict(data=-1))
  c.compile_cache_dir = compile_cache.DEFAULT_DIR   # persistent XLA cache; "" = off
  c.optim = ml_collections.ConfigDict(dict(lr=1e-4, b1=0.5, b2=0.999, eps=1e-8))
  c.loss = ml_collections.ConfigDict(dict(
      mse_weight=1.0, lpips_weight=1.0, latent_weight=1.0, lpips_net="vgg",
      lpips_resolution=0,              # 0: LPIPS at the generator's resolution
      center_weight=1.0, sigma_weight=1.0,   # a SpatialGAN's heatmap terms
      mask_t_min=0.3, mask_t_max=1.0, mask_grid=6))
  # Completed by attach_generator: kind, resolution, num_ws, w_dim, the head's layout (grid_h,
  # grid_w, codes, extras) and generator (its model section).
  c.model = ml_collections.ConfigDict(dict(
      kind="regressor", depth=34, width=64, input_size=0, use_mask=True, noise_mode="const",
      compute_dtype="float32"))
  c.keep_checkpoints = 3
  c.num_samples = 8                    # sample grid: targets, hints, reconstructions
  if preset == "tiny":
    c.batch_size, c.total_steps = 8, 4
    c.checkpoint_every, c.log_every, c.sample_every = 2, 1, 0
    c.data = config_lib.data_config(16)
    c.model.update(depth=18, width=8)
    c.loss.lpips_weight = 0.0
    c.num_samples = 4
  elif preset == "demo":
    c.batch_size, c.total_steps = 16, 3000
    c.checkpoint_every, c.log_every, c.sample_every = 500, 50, 500
    c.data = config_lib.data_config(32)
    c.model.update(depth=18, width=32)
  else:  # the official StyleGAN2 encoder (latent-composition): batch 16, 680k steps
    c.batch_size, c.total_steps = 16, 680_000
    c.checkpoint_every, c.log_every, c.sample_every = 5_000, 100, 5_000
    c.data = config_lib.data_config(256, source="folder")
    c.loss.lpips_resolution = 256      # the official code area-pools to 256 before LPIPS
  return c
