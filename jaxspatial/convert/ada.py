"""stylegan2-ada-pytorch network pickles -> jaxspatial StyleGAN2 variables.

The pickle is read by :mod:`jaxspatial.convert.safe_pickle` (nothing executed); this module
turns its ``G_ema`` / ``G`` / ``D`` records into the same Flax variables a rosinality
conversion gives, plus the ada-only parts (``conv_clamp``, the label embedding of a
conditional mapping, D's label mapping and ``cmap`` projection). The architecture is read
from the records (constructor kwargs, per-layer attributes) and checked against the tensor
shapes; the channel rule ``min(channel_base // res, channel_max)`` is inferred from the
shapes alone. Supported: G architecture 'skip', D 'resnet', RGB - what train.py builds by
default and what NVIDIA, DragGAN and EqGAN-SA publish. ``use_fp16`` only flags blocks to
run in float16 on a GPU; the stored weights are float32 and are converted as such.

Key mapping (torch -> Flax, layouts as in :mod:`convert.rules`)::

    synthesis.b4.const                 params/synthesis/const         [C,4,4] -> (1,4,4,C)
    synthesis.b4.conv1 / torgb         params/synthesis/conv1 / to_rgb1
    synthesis.b{2^(r+3)}.conv0/conv1   params/synthesis/convs_{2r} / convs_{2r+1}
    synthesis.b{2^(r+3)}.torgb         params/synthesis/to_rgbs_{r}
      .weight .bias .noise_strength .affine.*  ->  conv/weight, bias, noise/weight, conv/modulation/*
      .noise_const [R,R]               buffers/synthesis/noise_{i} (1,R,R,1)
    mapping.embed / fc{i}              params/mapping/embed / dense_{i+1}; mapping.w_avg -> buffers/w_avg
    D b{R}.fromrgb                     params/from_rgb
    D b{res}.conv0 / conv1 / skip      params/blocks_{n}/conv1 / conv2 / skip   (n = log2(R/res) + 1)
    D b4.conv / fc / out               params/final_conv / final_dense / out
    D mapping.embed / fc{i}            params/mapping/embed / dense_{i+1}
    *.resample_filter                  checked to be the [1,3,3,1] FIR filter, not stored
"""

from __future__ import annotations

import functools
import math
import re
from typing import Callable

import jax
import ml_collections
import numpy as np

from jaxspatial import families
from jaxspatial import models as models_lib
from jaxspatial.convert import rules as rules_lib
from jaxspatial.convert.rules import ConversionError, Rule, exact
from jaxspatial.convert.safe_pickle import Record
from jaxspatial.models import stylegan2

def _const(a: np.ndarray) -> np.ndarray:       # [C, 4, 4] -> (1, 4, 4, C)
  return a.transpose(1, 2, 0)[None]


def _noise(a: np.ndarray) -> np.ndarray:       # [R, R] -> (1, R, R, 1)
  return a[None, :, :, None]


def _layer_rules(src: str, dst: str, noise_index: int | None) -> list[Rule]:
  rules = [exact(f"{src}.weight", f"params/synthesis/{dst}/conv/weight", rules_lib.conv),
           exact(f"{src}.bias", f"params/synthesis/{dst}/bias"),
           exact(f"{src}.affine.weight", f"params/synthesis/{dst}/conv/modulation/weight",
                 rules_lib.linear),
           exact(f"{src}.affine.bias", f"params/synthesis/{dst}/conv/modulation/bias")]
  if noise_index is not None:
    rules += [exact(f"{src}.noise_strength", f"params/synthesis/{dst}/noise/weight"),
              exact(f"{src}.noise_const", f"buffers/synthesis/noise_{noise_index}", _noise)]
  return rules


def _mapping_rules(num_layers: int, conditional: bool) -> list[Rule]:
  rules = []
  for name, dst in ([("embed", "embed")] if conditional else []) + [
      (f"fc{i}", f"dense_{i + 1}") for i in range(num_layers)]:
    rules += [exact(f"mapping.{name}.weight", f"params/mapping/{dst}/weight", rules_lib.linear),
              exact(f"mapping.{name}.bias", f"params/mapping/{dst}/bias")]
  return rules


_FIR = Rule(r"(.+\.)?resample_filter", None, fir_gain=1.0)


def generator_rules(cfg: ml_collections.ConfigDict) -> list[Rule]:
  rules = [exact("synthesis.b4.const", "params/synthesis/const", _const), _FIR,
           exact("mapping.w_avg", "buffers/w_avg")]
  rules += _layer_rules("synthesis.b4.conv1", "conv1", 0)
  rules += _layer_rules("synthesis.b4.torgb", "to_rgb1", None)
  for r in range(stylegan2.log2_resolution(cfg.resolution) - 2):
    b = f"synthesis.b{2 ** (r + 3)}"
    rules += _layer_rules(f"{b}.conv0", f"convs_{2 * r}", 2 * r + 1)
    rules += _layer_rules(f"{b}.conv1", f"convs_{2 * r + 1}", 2 * r + 2)
    rules += _layer_rules(f"{b}.torgb", f"to_rgbs_{r}", None)
  return rules + _mapping_rules(cfg.n_mlp, cfg.c_dim > 0)


def discriminator_rules(cfg: ml_collections.ConfigDict) -> list[Rule]:
  log_res = stylegan2.log2_resolution(cfg.resolution)
  rules = [_FIR, exact(f"b{cfg.resolution}.fromrgb.weight", "params/from_rgb/weight",
                       rules_lib.conv),
           exact(f"b{cfg.resolution}.fromrgb.bias", "params/from_rgb/bias")]
  for n in range(1, log_res - 1):
    b, dst = f"b{2 ** (log_res - n + 1)}", f"params/blocks_{n}"
    for src, name in (("conv0", "conv1"), ("conv1", "conv2")):
      rules += [exact(f"{b}.{src}.weight", f"{dst}/{name}/weight", rules_lib.conv),
                exact(f"{b}.{src}.bias", f"{dst}/{name}/bias")]
    rules.append(exact(f"{b}.skip.weight", f"{dst}/skip/weight", rules_lib.conv))
  rules += [exact("b4.conv.weight", "params/final_conv/weight", rules_lib.conv),
            exact("b4.conv.bias", "params/final_conv/bias"),
            exact("b4.fc.weight", "params/final_dense/weight",
                  rules_lib.flatten_rows_nchw_to_nhwc),
            exact("b4.fc.bias", "params/final_dense/bias"),
            exact("b4.out.weight", "params/out/weight", rules_lib.linear),
            exact("b4.out.bias", "params/out/bias")]
  return rules + _mapping_rules(cfg.d_mapping_layers, cfg.c_dim > 0)


# ------------------------------------------------------------------------ architecture


def is_ada(data) -> bool:
  """A stylegan2-ada snapshot: ``G_ema`` a ``Generator`` with mapping + synthesis children
  (EqGAN-SA's, which also records ``use_sel``, is not)."""
  g = data.get("G_ema") if isinstance(data, dict) else None
  return (isinstance(g, Record) and g.class_name == "Generator"
          and {"mapping", "synthesis"} <= set(g.children) and "use_sel" not in g.init_kwargs)


def _modules(rec: Record) -> dict[str, Record]:
  return dict(rec.named_modules())


def infer_channels(channels: dict[int, int], base_hint: int | None) -> tuple[int, int]:
  """(channel_base, channel_max) with ``channels[res] == min(base // res, max)`` for all res.

  ``channel_max`` is the widest layer; ``channel_base`` is ``base_hint`` (the pickle's
  constructor argument) if it reproduces every width, else the smallest value that does.
  """
  cmax = max(channels.values())
  narrow = [c * r for r, c in channels.items() if c < cmax]
  candidates = ([base_hint] if base_hint else []) + [max(narrow, default=cmax * max(channels))]
  for base in candidates:
    if all(min(base // r, cmax) == c for r, c in channels.items()):
      return base, cmax
  table = ", ".join(f"{c}@{r}" for r, c in sorted(channels.items()))
  raise ConversionError(f"channel widths {table} do not follow min(channel_base // res, "
                        "channel_max)")


def _require(cond: bool, what: str) -> None:
  if not cond:
    raise ConversionError(f"unsupported stylegan2-ada network: {what}")


def _clamps(records: dict[str, Record], *class_names: str) -> set:
  return {r.state.get("conv_clamp") for r in records.values() if r.class_name in class_names}


def model_config(g: Record, d: Record | None) -> ml_collections.ConfigDict:
  """The ``config.model`` section that builds these networks."""
  sd, mods = g.state_dict(), _modules(g)
  syn = g.init_kwargs.get("synthesis_kwargs", {})
  _require(g.state.get("img_channels") == 3, f"img_channels {g.state.get('img_channels')}")
  archs = {r.state.get("architecture") for r in mods.values() if r.class_name == "SynthesisBlock"}
  _require(archs == {"skip"}, f"G architecture {sorted(map(str, archs))} (only 'skip')")
  resolution = int(g.state["img_resolution"])
  log_res = stylegan2.log2_resolution(resolution)
  n_mlp = len([k for k in sd if re.fullmatch(r"mapping\.fc\d+\.weight", k)])
  c_dim = int(g.state.get("c_dim", 0))
  w_dim = int(g.state["w_dim"])
  widths = {sd[f"mapping.fc{i}.weight"].shape[0] for i in range(n_mlp)}
  _require(widths == {w_dim}, f"mapping layer widths {sorted(widths)} differ from w_dim {w_dim}")
  if c_dim:
    _require(sd["mapping.embed.weight"].shape == (w_dim, c_dim), "label embedding width != w_dim")
  fc0 = mods["mapping.fc0"].state
  lr_mlp = float(fc0["weight_gain"]) * math.sqrt(sd["mapping.fc0.weight"].shape[1])
  channels = {2 ** k: int(sd[f"synthesis.b{2 ** k}.conv1.weight"].shape[0])
              for k in range(2, log_res + 1)}
  base, cmax = infer_channels(channels, syn.get("channel_base"))
  clamps = _clamps(mods, "SynthesisLayer", "ToRGBLayer")
  _require(len(clamps) == 1, f"several conv_clamp values {sorted(map(str, clamps))}")
  cfg = models_lib.stylegan2_model_config(
      resolution, z_dim=int(g.state["z_dim"]), w_dim=w_dim, n_mlp=n_mlp, channel_base=base,
      channel_max=cmax, c_dim=c_dim, conv_clamp=clamps.pop())
  cfg.lr_mlp = round(lr_mlp, 6)
  if d is not None:
    _discriminator_config(d, cfg, channels)
  return cfg


def _discriminator_config(d: Record, cfg: ml_collections.ConfigDict, channels: dict) -> None:
  sd, mods = d.state_dict(), _modules(d)
  _require(int(d.state["img_resolution"]) == cfg.resolution and int(d.state.get("c_dim", 0))
           == cfg.c_dim, "D and G differ in resolution or c_dim")
  archs = {r.state.get("architecture") for r in mods.values()
           if r.class_name in ("DiscriminatorBlock", "DiscriminatorEpilogue")}
  _require(archs == {"resnet"}, f"D architecture {sorted(map(str, archs))} (only 'resnet')")
  d_channels = {r: int(sd[f"b{r}.conv0.weight"].shape[0]) for r in channels if r > 4}
  d_channels[4] = int(sd["b4.conv.weight"].shape[0])
  _require(d_channels == channels, "D's channel widths differ from G's")
  d_clamps = {r.state.get("conv_clamp") for n, r in mods.items()
              if r.class_name == "Conv2dLayer" and not n.endswith("skip")}
  _require(d_clamps == {cfg.conv_clamp}, f"D conv_clamp {sorted(map(str, d_clamps))} != G's")
  mbstd = mods["b4.mbstd"].state if "b4.mbstd" in mods else None
  _require(mbstd is not None, "D without minibatch stddev")
  _require(mbstd["group_size"] is not None, "minibatch stddev over the whole batch")
  cfg.mbstd_group_size = int(mbstd["group_size"])
  cfg.mbstd_num_channels = int(mbstd["num_channels"])
  if cfg.c_dim:
    cfg.cmap_dim = int(sd["b4.out.weight"].shape[0])
    cfg.d_mapping_layers = len([k for k in sd if re.fullmatch(r"mapping\.fc\d+\.weight", k)])
    fc0 = mods["mapping.fc0"].state
    d_lr = float(fc0["weight_gain"]) * math.sqrt(sd["mapping.fc0.weight"].shape[1])
    _require(abs(d_lr - cfg.lr_mlp) < 1e-6, f"D mapping lr {d_lr:g} != G's {cfg.lr_mlp:g}")


# ------------------------------------------------------------------------ conversion


def _labels(cfg: ml_collections.ConfigDict) -> np.ndarray | None:
  return np.zeros((1, cfg.c_dim), np.float32) if cfg.c_dim else None


def convert_generator(g: Record, cfg: ml_collections.ConfigDict, what: str) -> dict:
  gen = families.build_generator(cfg)
  shapes = jax.eval_shape(functools.partial(gen.init, labels=_labels(cfg)), jax.random.key(0),
                          np.zeros((1, cfg.z_dim), np.float32))
  tree = rules_lib.apply_rules(g.state_dict(), generator_rules(cfg),
                               rules_lib.flatten_shapes(shapes), what)
  if "w_avg" not in tree.get("buffers", {}):
    raise ConversionError(f"{what} has no mapping.w_avg (built with w_avg_beta=None)")
  return tree


def convert_discriminator(d: Record, cfg: ml_collections.ConfigDict) -> dict:
  disc = families.build_discriminator(cfg)
  shapes = jax.eval_shape(functools.partial(disc.init, labels=_labels(cfg)), jax.random.key(0),
                          np.zeros((1, cfg.resolution, cfg.resolution, 3), np.float32))
  return rules_lib.apply_rules(d.state_dict(), discriminator_rules(cfg),
                               rules_lib.flatten_shapes(shapes), "D")


def fp16_blocks(rec: Record) -> list[str]:
  return [n.split(".")[-1] for n, r in rec.named_modules() if r.state.get("use_fp16") is True]


def convert_snapshot(data: dict, model_config_fn: Callable, convert_generator_fn: Callable,
                     describe: Callable[[ml_collections.ConfigDict], str], note: str = ""
                     ) -> tuple[dict, ml_collections.ConfigDict, list[str]]:
  """A network-pickle snapshot {G_ema, G?, D?} -> (models dict, config, summary lines), with
  the format's own config reader, generator converter and one-line architecture text (the
  EqGAN-SA converter shares everything else)."""
  g_ema, g, d = data["G_ema"], data.get("G"), data.get("D")
  has_d = isinstance(d, Record)
  cfg = model_config_fn(g_ema, d if has_d else None)
  models = {"g_ema": convert_generator_fn(g_ema, cfg, "G_ema")}
  names = ["G_ema -> g_ema"]
  if isinstance(g, Record):
    models["g"] = convert_generator_fn(g, cfg, "G")
    names.append("G -> g")
  if has_d:
    models["d"] = convert_discriminator(d, cfg)
    names.append("D -> d")
  fp16 = [f"{k} {','.join(fp16_blocks(v))}" for k, v in (("G", g_ema), ("D", d))
          if isinstance(v, Record) and fp16_blocks(v)]
  summary = [
      describe(cfg) + f", conv_clamp {cfg.conv_clamp}"
      + (f", mbstd group {cfg.mbstd_group_size} x {cfg.mbstd_num_channels}" if has_d else ""),
      "converted: " + ", ".join(names) + " (G_ema is the default generator)",
      "fp16 flags seen and ignored (float32 weights, float32 compute): "
      + ("; ".join(fp16) if fp16 else "none") + note,
  ]
  return models, ml_collections.ConfigDict({"model": cfg}), summary


def _describe(cfg: ml_collections.ConfigDict) -> str:
  table = models_lib.channel_table(cfg)
  channels = " ".join(f"{table(2 ** k)}@{2 ** k}"
                      for k in range(2, stylegan2.log2_resolution(cfg.resolution) + 1))
  return (f"stylegan2-ada {cfg.resolution}x{cfg.resolution}: z {cfg.z_dim}, w {cfg.w_dim}, "
          f"c {cfg.c_dim}, mapping {cfg.n_mlp} layers, "
          f"num_ws {stylegan2.num_ws(cfg.resolution)}, "
          f"channels min({cfg.channel_base} // res, {cfg.channel_max}) ({channels})")


def convert(data: dict, **_) -> tuple[dict, ml_collections.ConfigDict, list[str]]:
  """A loaded network pickle -> (models dict, config, summary lines)."""
  return convert_snapshot(data, model_config, convert_generator, _describe)
