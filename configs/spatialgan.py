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
"""

from jaxspatial.models.spatialgan import spatialgan_model_config
from jaxspatial.training import config_lib

PRESETS = ("tiny", "demo", "demo_indoor", "paper256")
_SG2_KEYS = ("z_dim", "w_dim", "n_mlp", "channel_multiplier", "channel_base", "channel_max",
             "mbstd_group_size")


def get_config(preset: str = "demo"):
  """Returns the SpatialGAN config for ``preset`` (tiny | demo | demo_indoor | paper256)."""
  preset = preset or "demo"
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
  base = "demo" if preset == "demo_indoor" else preset
  config = config_lib.gan_config(base)
  config.preset = preset
  sg2 = config_lib.stylegan2_model(base)
  kw = {k: sg2[k] for k in _SG2_KEYS}
  config.loss.update(dict(align_weight=1.0, align_objective="plain", align_threshold=0.25,
                          align_resolutions=(4, 8, 16)))
  if preset == "tiny":
    config.model = spatialgan_model_config(sg2.resolution, sel_hidden=16, **kw)
  elif preset == "demo":
    config.model = spatialgan_model_config(sg2.resolution, sel_hidden=32, coarse=True,
                                           sel_resolutions=(4, 8, 16), **kw)
    config.data.update(max_objects=1, num_objects=1)
    config.total_steps, config.checkpoint_every, config.sample_every = 3000, 1000, 500
  elif preset == "demo_indoor":
    config.model = spatialgan_model_config(
        sg2.resolution, heatmaps="multi", encoding="indoor", num_objects=3,
        object_sigma_scale=0.1, **kw)
    config.data.update(max_objects=3, num_objects=3)
    config.loss.align_objective = "min"
  else:
    config.model = spatialgan_model_config(sg2.resolution, **kw)
    config.loss.update(pl_weight=0.0, style_mixing=0.0)
    # The official EqGAN-SA command trains with --aug=noaug, unlike stylegan2-ada's paper256.
    config.augment.kind = "none"
  return config
