"""SpatialGAN training configs (StyleGAN2 + heatmap encoding + GradCAM alignment).

    python -m jaxspatial.train --config configs/spatialgan.py:demo --workdir runs/sgan-demo
    python -m jaxspatial.train --config configs/spatialgan.py:demo --workdir runs/sgan-noalign \
        --config.loss.align_weight=0
    python -m jaxspatial.train --config configs/spatialgan.py:paper256 --workdir runs/cat \
        --config.data.source=folder --config.data.path=/data/lsun_cat_200k.zip

Presets:

* ``tiny`` -- tests: 16 px, a few channels, alignment at 4 and 8 px;
* ``demo`` -- single-object shapes scenes at 32 px, hierarchical heatmaps, SEL_norm; 3000
  steps, by which objects follow their heatmaps (docs/spatialgan.md: the runs with and
  without alignment took 33 min side by side on 2 CPU cores). It keeps the form those
  documented runs were measured with: SELs at 4, 8, 16 px only and ``coarse=True`` heatmaps
  (no embedding at image resolution); every other preset is the official EqGAN-SA network
  (a SEL in every block, ``coarse=False``);
* ``demo_indoor`` -- 3-object shapes scenes, multi-object heatmaps (n = 3) at every layer,
  SEL_indoor (one style code per object) and the indoor ``min`` alignment objective;
* ``paper256`` -- the EqGAN-SA command: stylegan2-ada paper256, no augmentation (``--aug=noaug``,
  so ``augment.kind`` none where stylegan2-ada's paper256 uses ADA), path length
  weight 0, no style mixing, SEL + alignment (weight 1 on every G step).

``--config.init_from=DIR`` starts from a SpatialGAN checkpoint, or from a StyleGAN2 one of the
same size (its weights copied, the SEL layers fresh: a warm start, the paper trains from
scratch):

    python -m jaxspatial.train --config configs/spatialgan.py:demo --workdir runs/sgan-warm \
        --config.init_from=runs/demo --config.model.channel_max=32   # the StyleGAN2 demo's width

Ablations (Tables I, IV, V) are ``--config.model.*`` switches: ``encoding`` (norm | concat |
indoor | flatten | none), ``heatmaps`` (hierarchical | independent | multi),
``heatmap_input`` (gaussian | noise), ``coarse``; and ``--config.loss.align_weight=0``.
``--config.loss.locality_weight=W`` adds the heatmap-locality penalty (beyond the paper;
docs/spatialgan.md), 0 in every preset. ``--config.loss.align_every=K`` (beyond the paper) runs
the alignment term on every K-th G step only, at K x ``align_weight`` (lazy, as R1 is); 1 in
every preset (docs/benchmarks.md times K = 4).

Every value of a preset is set here, on top of ``config_lib.base_config`` (the shared defaults:
stylegan2-ada paper256's optimiser, R1, path length, style mixing and EMA).
"""

from jaxspatial.models.spatialgan import spatialgan_model_config
from jaxspatial.training import config_lib

PRESETS = ("tiny", "demo", "demo_indoor", "paper256")


def get_config(preset: str = "demo"):
  """The SpatialGAN config for ``preset`` (tiny | demo | demo_indoor | paper256)::

      python -m jaxspatial.train --config configs/spatialgan.py:demo --workdir runs/sgan-demo
  """
  preset = config_lib.check_preset(preset, PRESETS)
  c = config_lib.base_config(preset)
  # GradCAM alignment on every G step (EqGAN-SA: weight 1), at D's 4, 8 and 16 px maps;
  # align_every k > 1: lazy alignment (ours), the term on every k-th step at k x the weight.
  c.loss.update(align_weight=1.0, align_objective="plain", align_threshold=0.25,
                align_resolutions=(4, 8, 16), align_every=1)
  # The heatmap-locality penalty (ours, not the paper's): off in every preset.
  c.loss.update(locality_weight=0.0, locality_threshold=0.1, locality_batch_shrink=1)
  if preset == "tiny":
    c.batch_size, c.total_steps = 8, 4
    c.checkpoint_every, c.log_every, c.sample_every = 2, 1, 0
    c.data = config_lib.data_config(16)
    c.loss.update(r1_gamma=0.1, r1_every=2, pl_every=2, pl_batch_shrink=1)
    c.ema_kimg = 0.01
    c.num_samples = 4
    c.model = spatialgan_model_config(16, sel_hidden=16, z_dim=32, w_dim=32, n_mlp=2,
                                      channel_base=256, channel_max=32, mbstd_group_size=4)
  elif preset in ("demo", "demo_indoor"):
    c.batch_size = 16
    c.total_steps, c.checkpoint_every, c.sample_every = (
        (3000, 1000, 500) if preset == "demo" else (900, 300, 150))
    c.log_every = 25
    c.data = config_lib.data_config(32)
    c.loss.update(r1_gamma=0.05, r1_every=16, pl_weight=0.0, style_mixing=0.0)
    c.ema_kimg, c.ema_rampup = 2.0, 0.05
    width = dict(z_dim=64, w_dim=64, n_mlp=2, channel_base=1024, channel_max=64,
                 mbstd_group_size=4)
    if preset == "demo":        # one object; SELs at 4, 8, 16 px, coarse heatmaps (see above)
      c.data.update(max_objects=1, num_objects=1)
      c.model = spatialgan_model_config(32, sel_hidden=32, coarse=True,
                                        sel_resolutions=(4, 8, 16), **width)
    else:                       # three objects, SEL_indoor, the indoor ``min`` alignment
      c.data.update(max_objects=3, num_objects=3)
      c.model = spatialgan_model_config(32, heatmaps="multi", encoding="indoor", num_objects=3,
                                        object_sigma_scale=0.1, **width)
      c.loss.align_objective = "min"
  else:  # the EqGAN-SA command: stylegan2-ada cfg_specs['paper256'] (mb=64, kimg=25000,
    #      fmaps=0.5, mbstd=8, lrate=0.0025, gamma=1, ema=20, map=8) with --aug=noaug,
    #      pl_weight 0 and no style mixing
    c.batch_size, c.total_steps = 64, 400_000      # 25,600 kimg
    c.checkpoint_every, c.log_every, c.sample_every = 5_000, 100, 5_000
    c.data = config_lib.data_config(256, source="folder")
    c.loss.update(r1_gamma=1.0, pl_weight=0.0, style_mixing=0.0)
    c.ema_kimg = 20.0
    c.augment.kind = "none"     # --aug=noaug, unlike stylegan2-ada's paper256 (ADA)
    c.model = spatialgan_model_config(256, channel_base=16384, channel_max=512,
                                      mbstd_group_size=8)
  return c
