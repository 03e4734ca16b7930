"""genforce/eqgan-sa network pickles (EqGAN-SA, the conference SpatialGAN) -> a jaxspatial
``spatialgan`` directory.

An EqGAN-SA snapshot is a stylegan2-ada pickle whose generator was built with
``use_sel=True`` (read by :func:`jaxspatial.convert.safe_pickle.load_network_pickle`, which
executes nothing). Everything stylegan2-ada has is converted by :mod:`convert.ada`'s rules
and architecture checks; this module adds the heatmap encoders and the SEL layers and builds
our SpatialGAN in its official form (``encoding="norm"``, ``coarse=False``: heatmaps embedded
at image resolution, the features resized bilinearly with aligned corners to each SEL's
input; a SEL before every conv and ToRGB of every block; block ``b<R>`` fed by heatmap key
``b<2R>``, the 96-channel concatenation from 32 px up). D is ada's resnet D.

Extra keys (``<layer>`` = ada's layer -> ours, as in :mod:`convert.ada`)::

    synthesis.hm_conv<j>_b<8|16|32>            synthesis/heatmap_embed_<0|1|2>/conv<j>
    <layer>.sel.{shared.0, sigma, mu, output.1}  synthesis/sel_<ours>/{shared, sigma, mu, output}
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from jaxspatial import families
from jaxspatial.convert import ada
from jaxspatial.convert import rules as rules_lib
from jaxspatial.convert.rules import exact
from jaxspatial.models import heatmaps as heatmaps_lib
from jaxspatial.models import spatialgan
from jaxspatial.models import stylegan2 as sg2

HEATMAP_LEVELS = {"b8": 0, "b16": 1, "b32": 2}
SEL_PARTS = {"shared.0": "shared", "sigma": "sigma", "mu": "mu", "output.1": "output"}


def synthesis_layers(resolution: int) -> list[tuple[str, str]]:
  """(ada layer, our layer) for every modulated conv and ToRGB, in order."""
  layers = [("synthesis.b4.conv1", "conv1"), ("synthesis.b4.torgb", "to_rgb1")]
  for r in range(sg2.log2_resolution(resolution) - 2):
    b = f"synthesis.b{2 ** (r + 3)}"
    layers += [(f"{b}.conv0", f"convs_{2 * r}"), (f"{b}.conv1", f"convs_{2 * r + 1}"),
               (f"{b}.torgb", f"to_rgbs_{r}")]
  return layers


def heatmap_rules(resolution: int) -> list[rules_lib.Rule]:
  """Rules for the heatmap encoders and every SEL (on top of ``ada.generator_rules``)."""
  rules = []
  for key, level in HEATMAP_LEVELS.items():
    for j in (0, 1):
      src, dst = f"synthesis.hm_conv{j}_{key}", f"params/synthesis/heatmap_embed_{level}/conv{j}"
      rules += [exact(f"{src}.weight", f"{dst}/weight", rules_lib.conv),
                exact(f"{src}.bias", f"{dst}/bias")]
  for src, ours in synthesis_layers(resolution):
    for part, name in SEL_PARTS.items():
      dst = f"params/synthesis/sel_{ours}/{name}"
      rules += [exact(f"{src}.sel.{part}.weight", f"{dst}/weight", rules_lib.conv),
                exact(f"{src}.sel.{part}.bias", f"{dst}/bias")]
  return rules


def model_config(g, d) -> ml_collections.ConfigDict:
  """ada's ``config.model`` of these networks, turned into the official SpatialGAN form."""
  cfg = ada.model_config(g, d)
  if cfg.c_dim:
    raise ada.ConversionError(f"EqGAN-SA generator with c_dim={cfg.c_dim}: conditional "
                              "EqGAN-SA models are not supported")
  sgan = spatialgan.spatialgan_model_config(cfg.resolution)
  cfg.update({k: v for k, v in sgan.items() if k not in cfg or k == "kind"})
  return cfg


def convert_generator(g, cfg: ml_collections.ConfigDict, what: str) -> dict:
  gen = families.build_generator(cfg)
  shapes = jax.eval_shape(gen.init, jax.random.key(0), np.zeros((1, cfg.z_dim), np.float32),
                          heatmaps_lib.sample(jax.random.key(0), 1))
  return rules_lib.apply_rules(g.state_dict(),
                               heatmap_rules(cfg.resolution) + ada.generator_rules(cfg),
                               rules_lib.flatten_shapes(shapes), what)


def _describe(cfg: ml_collections.ConfigDict) -> str:
  return (f"EqGAN-SA (SpatialGAN with SEL) {cfg.resolution}x{cfg.resolution}: z {cfg.z_dim}, "
          f"w {cfg.w_dim}, mapping {cfg.n_mlp} layers, num_ws {sg2.num_ws(cfg.resolution)}, "
          f"channels min({cfg.channel_base} // res, {cfg.channel_max}), "
          f"SEL in blocks {','.join(map(str, cfg.sel_resolutions))}")


def convert(data: dict, **_) -> tuple[dict, ml_collections.ConfigDict, list[str]]:
  """A loaded EqGAN-SA snapshot -> (models dict, config, summary lines)."""
  return ada.convert_snapshot(
      data, model_config, convert_generator, _describe,
      note="; the heatmaps of G_ema's last call stored in the pickle are ignored")
