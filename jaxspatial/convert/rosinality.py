"""rosinality/stylegan2-pytorch state dicts <-> jaxspatial StyleGAN2 variables.

Pure numpy: the torch file is read by :mod:`jaxspatial.convert.torch` and written by
``export_torch``. Each torch key maps to one Flax variable through a rule of
:mod:`jaxspatial.convert.rules` (regex -> path template, layout transform and its inverse);
the result is checked against the shapes ``jax.eval_shape`` gives for the inferred
architecture, so a missing key, an unexpected key or a shape mismatch is reported by name.
FIR ``.kernel`` buffers are verified against the [1,3,3,1] filter, not copied. Export walks
the same rules backwards over the key list rosinality's modules register
(:func:`generator_keys`, :func:`discriminator_keys`). Both directions stay in this one file
because they share the one rule table (:data:`G_RULES`, :data:`D_RULES`).
"""

from __future__ import annotations

import re
from typing import Mapping

import jax
import ml_collections
import numpy as np

from jaxspatial import families
from jaxspatial import models as models_lib
from jaxspatial.convert import rules
from jaxspatial.convert import torch as torch_io
from jaxspatial.errors import UserError
from jaxspatial.models import stylegan2


ConversionError = rules.ConversionError     # the state dict does not fit the architecture
Rule = rules.Rule


G_RULES = [
    Rule(r"style\.(\d+)\.weight", r"params/mapping/dense_\1/weight", rules.linear,
         inverse=rules.linear),
    Rule(r"style\.(\d+)\.bias", r"params/mapping/dense_\1/bias"),
    Rule(r"input\.input", "params/synthesis/const", rules.nchw_to_nhwc, inverse=rules.nhwc_to_nchw),
    Rule(r"(conv1|convs\.\d+|to_rgb1|to_rgbs\.\d+)\.conv\.weight",
         r"params/synthesis/\1/conv/weight", rules.modconv, inverse=rules.modconv_back),
    Rule(r"(conv1|convs\.\d+|to_rgb1|to_rgbs\.\d+)\.conv\.modulation\.weight",
         r"params/synthesis/\1/conv/modulation/weight", rules.linear, inverse=rules.linear),
    Rule(r"(conv1|convs\.\d+|to_rgb1|to_rgbs\.\d+)\.conv\.modulation\.bias",
         r"params/synthesis/\1/conv/modulation/bias"),
    Rule(r"(conv1|convs\.\d+)\.noise\.weight", r"params/synthesis/\1/noise/weight",
         lambda a: a.reshape(()), inverse=lambda a: a.reshape(1)),
    Rule(r"(conv1|convs\.\d+)\.activate\.bias", r"params/synthesis/\1/bias"),
    Rule(r"(to_rgb1|to_rgbs\.\d+)\.bias", r"params/synthesis/\1/bias", lambda a: a.reshape(-1),
         inverse=lambda a: a.reshape(1, -1, 1, 1)),
    Rule(r"noises\.noise_(\d+)", r"buffers/synthesis/noise_\1", rules.nchw_to_nhwc,
         inverse=rules.nhwc_to_nchw),
    Rule(r"convs\.\d+\.conv\.blur\.kernel", None, fir_gain=4.0),
    Rule(r"to_rgbs\.\d+\.upsample\.kernel", None, fir_gain=4.0),
]

D_RULES = [
    Rule(r"convs\.0\.0\.weight", "params/from_rgb/weight", rules.conv, inverse=rules.conv_back),
    Rule(r"convs\.0\.1\.bias", "params/from_rgb/bias"),
    Rule(r"convs\.(\d+)\.conv1\.0\.weight", r"params/blocks_\1/conv1/weight", rules.conv,
         inverse=rules.conv_back),
    Rule(r"convs\.(\d+)\.conv1\.1\.bias", r"params/blocks_\1/conv1/bias"),
    Rule(r"convs\.(\d+)\.conv2\.1\.weight", r"params/blocks_\1/conv2/weight", rules.conv,
         inverse=rules.conv_back),
    Rule(r"convs\.(\d+)\.conv2\.2\.bias", r"params/blocks_\1/conv2/bias"),
    Rule(r"convs\.(\d+)\.skip\.1\.weight", r"params/blocks_\1/skip/weight", rules.conv,
         inverse=rules.conv_back),
    Rule(r"final_conv\.0\.weight", "params/final_conv/weight", rules.conv, inverse=rules.conv_back),
    Rule(r"final_conv\.1\.bias", "params/final_conv/bias"),
    Rule(r"final_linear\.0\.weight", "params/final_dense/weight", rules.flatten_rows_nchw_to_nhwc,
         inverse=rules.flatten_rows_nhwc_to_nchw),
    Rule(r"final_linear\.0\.bias", "params/final_dense/bias"),
    Rule(r"final_linear\.1\.weight", "params/out/weight", rules.linear, inverse=rules.linear),
    Rule(r"final_linear\.1\.bias", "params/out/bias"),
    Rule(r"convs\.\d+\.(conv2\.0|skip\.0)\.kernel", None, fir_gain=1.0),
]


def looks_like_generator(sd: Mapping[str, np.ndarray]) -> bool:
  return "style.1.weight" in sd and "input.input" in sd


def infer_generator_config(g_sd: Mapping[str, np.ndarray],
                           channel_multiplier_hint: int | None = None) -> ml_collections.ConfigDict:
  """Architecture from tensor shapes (SPEC.md section 1): size, w_dim, n_mlp, cm."""
  if not looks_like_generator(g_sd):
    raise ConversionError("not a rosinality StyleGAN2 generator state dict "
                          "(no 'style.1.weight' / 'input.input')")
  n_mlp = len([k for k in g_sd if re.fullmatch(r"style\.\d+\.weight", k)])
  w_dim = int(g_sd["style.1.weight"].shape[0])
  n_rgbs = len([k for k in g_sd if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k)])
  resolution = 2 ** (n_rgbs + 2)
  cm = channel_multiplier_hint or 2
  if resolution >= 64:
    cm = int(g_sd["to_rgbs.3.conv.weight"].shape[2]) // 256
  return models_lib.stylegan2_model_config(resolution, z_dim=w_dim, w_dim=w_dim,
                                           n_mlp=n_mlp, channel_multiplier=cm)


def discriminator_resolution(d_sd: Mapping[str, np.ndarray]) -> int:
  n_convs = len({k.split(".")[1] for k in d_sd if k.startswith("convs.")})
  return 2 ** (n_convs + 1)


def convert_generator(g_sd: Mapping[str, np.ndarray], model_cfg: ml_collections.ConfigDict,
                      what: str = "generator") -> dict:
  """Generator state dict -> {"params": ..., "buffers": ...} (``w_avg`` left at zeros)."""
  g = families.build_generator(model_cfg)
  shapes = jax.eval_shape(g.init, jax.random.key(0), np.zeros((1, model_cfg.z_dim), np.float32))
  tree = rules.apply_rules(g_sd, G_RULES, rules.flatten_shapes(shapes), what)
  tree["buffers"]["w_avg"] = np.zeros((model_cfg.w_dim,), np.float32)
  return tree


def convert_discriminator(d_sd: Mapping[str, np.ndarray],
                          model_cfg: ml_collections.ConfigDict) -> dict:
  """Discriminator state dict -> {"params": ...}."""
  res = discriminator_resolution(d_sd)
  if res != model_cfg.resolution:
    raise ConversionError(f"discriminator is for {res} px but the generator for "
                          f"{model_cfg.resolution} px")
  d = families.build_discriminator(model_cfg)
  shapes = jax.eval_shape(d.init, jax.random.key(0),
                          np.zeros((1, res, res, 3), np.float32))
  return rules.apply_rules(d_sd, D_RULES, rules.flatten_shapes(shapes), "discriminator")


def mean_w(g_vars: dict, model_cfg: ml_collections.ConfigDict, n: int = 10_000,
           seed: int = 0) -> np.ndarray:
  """Mean of ``mapping(z)`` over ``n`` standard-normal z drawn with ``seed``, (w_dim,)."""
  g = families.build_generator(model_cfg)
  z = jax.random.normal(jax.random.key(seed), (n, model_cfg.z_dim))
  w = jax.jit(lambda v, z: g.apply(v, z, method=stylegan2.Generator.mapping))(g_vars, z)
  return np.asarray(w.mean(0), np.float32)


# --------------------------------------------------------------------------- checkpoints


def is_rosinality(obj) -> bool:
  """A rosinality checkpoint dict (``g_ema`` ...) or a bare generator state dict."""
  return isinstance(obj, dict) and ("g_ema" in obj or looks_like_generator(obj))


def convert_stylegan2(obj, *, w_avg_samples: int = 10_000, log=print):
  """A loaded rosinality checkpoint -> (models dict, config, summary lines)."""
  if isinstance(obj, dict) and "g_ema" in obj:
    g_ema = torch_io.numpy_state_dict(obj["g_ema"], "g_ema")
    g = torch_io.numpy_state_dict(obj["g"], "g") if "g" in obj else None
    d = torch_io.numpy_state_dict(obj["d"], "d") if "d" in obj else None
    latent_avg = obj.get("latent_avg")
    args = obj.get("args")
  elif isinstance(obj, dict) and looks_like_generator(obj):
    g_ema = torch_io.numpy_state_dict(obj, "state dict")
    g, d, latent_avg, args = None, None, None, None
  else:
    keys = sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
    raise UserError(f"not a StyleGAN2 checkpoint: expected a rosinality dict with 'g_ema' "
                    f"or a generator state dict, found {keys}")
  cm_hint = getattr(args, "channel_multiplier", None)
  model_cfg = infer_generator_config(g_ema, cm_hint)
  models = {"g_ema": convert_generator(g_ema, model_cfg, "g_ema")}
  if g is not None:
    models["g"] = convert_generator(g, model_cfg, "g")
  if d is not None:
    models["d"] = convert_discriminator(d, model_cfg)
  if latent_avg is not None:
    w_avg = latent_avg.detach().cpu().float().numpy().reshape(-1)
    if w_avg.shape != (model_cfg.w_dim,):
      raise UserError(f"latent_avg has shape {tuple(w_avg.shape)}; expected ({model_cfg.w_dim},)")
    w_avg_note = "w_avg from the checkpoint's latent_avg"
  else:
    w_avg = mean_w(models["g_ema"], model_cfg, n=w_avg_samples, seed=0)
    w_avg_note = (f"no latent_avg in the checkpoint: w_avg computed from {w_avg_samples:,} "
                  "mapped z (seed 0)")
  for name in ("g_ema", "g"):
    if name in models:
      models[name]["buffers"]["w_avg"] = w_avg
  config = ml_collections.ConfigDict({"model": model_cfg})
  n_params = {k: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(v["params"]))
              for k, v in models.items()}
  summary = [
      f"StyleGAN2 {model_cfg.resolution}x{model_cfg.resolution}, w_dim {model_cfg.w_dim}, "
      f"n_mlp {model_cfg.n_mlp}, channel_multiplier {model_cfg.channel_multiplier}",
      "converted: " + ", ".join(f"{k} ({n / 1e6:.2f}M params)" for k, n in n_params.items()),
      w_avg_note,
  ]
  return models, config, summary


def convert_ssn(obj, **kw):
  """StyleGAN2 checkpoint -> SSN transferred from it (``jaxspatial.models.ssn``)."""
  from jaxspatial.models import ssn
  models, config, summary = convert_stylegan2(obj, **kw)
  return ssn.transfer_from_stylegan2(models, config, summary)


# ------------------------------------------------------------------------------ export


def generator_keys(model_cfg: ml_collections.ConfigDict) -> list[str]:
  """``Generator.state_dict()`` keys of rosinality's model, in its registration order."""
  log_res = stylegan2.log2_resolution(model_cfg.resolution)
  keys = [k for i in range(1, model_cfg.n_mlp + 1) for k in (f"style.{i}.weight",
                                                              f"style.{i}.bias")]
  keys.append("input.input")

  def styled(name, up):
    return ([f"{name}.conv.weight"] + ([f"{name}.conv.blur.kernel"] if up else []) +
            [f"{name}.conv.modulation.weight", f"{name}.conv.modulation.bias",
             f"{name}.noise.weight", f"{name}.activate.bias"])

  def rgb(name, up):
    return ([f"{name}.bias"] + ([f"{name}.upsample.kernel"] if up else []) +
            [f"{name}.conv.weight", f"{name}.conv.modulation.weight",
             f"{name}.conv.modulation.bias"])

  keys += styled("conv1", False) + rgb("to_rgb1", False)
  for i in range(2 * (log_res - 2)):
    keys += styled(f"convs.{i}", i % 2 == 0)
  for r in range(log_res - 2):
    keys += rgb(f"to_rgbs.{r}", True)
  return keys + [f"noises.noise_{i}" for i in range(stylegan2.num_noises(model_cfg.resolution))]


def discriminator_keys(model_cfg: ml_collections.ConfigDict) -> list[str]:
  """``Discriminator.state_dict()`` keys of rosinality's model, in its registration order."""
  keys = ["convs.0.0.weight", "convs.0.1.bias"]
  for i in range(1, stylegan2.log2_resolution(model_cfg.resolution) - 1):
    keys += [f"convs.{i}.conv1.0.weight", f"convs.{i}.conv1.1.bias", f"convs.{i}.conv2.0.kernel",
             f"convs.{i}.conv2.1.weight", f"convs.{i}.conv2.2.bias", f"convs.{i}.skip.0.kernel",
             f"convs.{i}.skip.1.weight"]
  return keys + ["final_conv.0.weight", "final_conv.1.bias", "final_linear.0.weight",
                 "final_linear.0.bias", "final_linear.1.weight", "final_linear.1.bias"]


def exportable(model_cfg: ml_collections.ConfigDict) -> None:
  """UserError unless rosinality's Generator/Discriminator can hold this architecture."""
  m = model_cfg

  def get(key):
    return models_lib.setting(m, key)

  problems = []
  if m.get("kind") != "stylegan2":
    problems.append(f"kind {m.get('kind')!r} (only plain StyleGAN2)")
  if get("channel_base"):
    problems.append(f"channels min({m.channel_base} // res, {m.channel_max}) (rosinality has "
                    "a fixed table: 512 up to 32 px, then channel_multiplier)")
  if m.z_dim != m.w_dim:
    problems.append(f"z_dim {m.z_dim} != w_dim {m.w_dim}")
  if get("c_dim") or get("conv_clamp") is not None:
    problems.append("labels / conv_clamp (stylegan2-ada features)")
  if (get("mbstd_group_size"), get("mbstd_num_channels")) != (4, 1):
    problems.append(f"minibatch stddev {get('mbstd_group_size')} x {get('mbstd_num_channels')} "
                    "(rosinality: 4 x 1)")
  if abs(get("lr_mlp") - 0.01) > 1e-9:
    problems.append(f"lr_mlp {get('lr_mlp')} (rosinality: 0.01)")
  if problems:
    raise UserError("cannot export to rosinality's architecture: " + "; ".join(problems))


def export_generator(g_vars: Mapping, model_cfg: ml_collections.ConfigDict) -> dict:
  """Our generator variables -> a state dict rosinality's ``Generator`` loads (numpy)."""
  exportable(model_cfg)
  return rules.export_state_dict(g_vars, generator_keys(model_cfg), G_RULES)


def export_discriminator(d_vars: Mapping, model_cfg: ml_collections.ConfigDict) -> dict:
  """Our discriminator variables -> a state dict rosinality's ``Discriminator`` loads."""
  exportable(model_cfg)
  return rules.export_state_dict(d_vars, discriminator_keys(model_cfg), D_RULES)
