"""chail/latent-composition RGBM encoders (``sgan_encoders_*_RGBM_model_final.pth``) ->
a jaxspatial regressor directory, paired with a converted StyleGAN2.

The released files are ``{'state_dict': ResNet state dict, ...}`` written by the official
``make_checkpoint`` (training checkpoints also hold ``optimizer``, ``epoch``, ``val_loss``,
which are ignored). The encoder is :class:`jaxspatial.models.regressor.Regressor` with
``depth=34, width=64, input_size=256, use_mask=True``: a torchvision ResNet whose ``fc`` is
dropped, a 1×1 ``layer5.conv5`` to ``512·L`` channels, a global mean and a row-major reshape to
W+ ``(n, L, 512)``. Depth (18 / 34), width and the input channels (4 = RGB+mask, 3 = RGB) are
read from the tensor shapes; L from conv5's width and the generator's ``w_dim``, and it must
equal the generator's ``num_ws``.

Pure numpy: the file is read by ``convert_torch`` (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxspatial import checkpoint
from jaxspatial.convert import rules as rules_lib
from jaxspatial.convert.rules import Rule
from jaxspatial.errors import UserError
from jaxspatial.models import regressor as regressor_lib
from jaxspatial.models import stylegan2 as sg2

HEAD = "layer5.conv5"
_BN_LEAVES = {"weight": "params/{}/scale", "bias": "params/{}/bias",
              "running_mean": "batch_stats/{}/mean", "running_var": "batch_stats/{}/var"}


def _rules() -> list[Rule]:
  """torch key -> Flax path of :class:`~jaxspatial.models.regressor.Regressor` (torch's
  ``num_batches_tracked`` buffers are dropped before: eval BN does not read them)."""
  rules = [Rule(r"layer5\.conv5\.weight", "params/conv5/kernel", rules_lib.conv),
           Rule(r"layer5\.conv5\.bias", "params/conv5/bias")]
  for torch_name, ours in (("conv1", "conv1"), ("conv2", "conv2"),
                           ("downsample\\.0", "downsample_conv")):
    rules.append(Rule(rf"layer(\d)\.(\d+)\.{torch_name}\.weight",
                      rf"params/layer\1_\2/{ours}/kernel", rules_lib.conv))
  rules.append(Rule(r"conv1\.weight", "params/conv1/kernel", rules_lib.conv))
  for leaf, target in _BN_LEAVES.items():
    for torch_name, ours in (("bn1", "bn1"), ("bn2", "bn2"), ("downsample\\.1", "downsample_bn")):
      rules.append(Rule(rf"layer(\d)\.(\d+)\.{torch_name}\.{leaf}",
                        target.format(rf"layer\1_\2/{ours}")))
    rules.append(Rule(rf"bn1\.{leaf}", target.format("bn1")))
  return rules


def looks_like_encoder(obj) -> bool:
  """A ``{'state_dict': ...}`` checkpoint (or a bare state dict) of the official encoder."""
  sd = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
  return isinstance(sd, Mapping) and f"{HEAD}.weight" in sd and "conv1.weight" in sd


def _depth(sd: Mapping[str, np.ndarray]) -> int:
  blocks = tuple(len({k.split(".")[1] for k in sd if k.startswith(f"layer{i}.")})
                 for i in range(1, 5))
  for depth, stages in regressor_lib.STAGES.items():
    if stages == blocks:
      return depth
  raise UserError(f"encoder has {blocks} blocks per ResNet stage; a ResNet-18 has "
                  f"{regressor_lib.STAGES[18]}, a ResNet-34 {regressor_lib.STAGES[34]}")


def encoder_variables(sd: Mapping[str, np.ndarray], model_cfg: ml_collections.ConfigDict) -> dict:
  """Encoder state dict -> ``{"params", "batch_stats"}`` of ``build_regressor(model_cfg)``;
  unexpected, missing or mis-shaped keys are named in one :class:`UserError`."""
  res = int(model_cfg.resolution)
  abstract = jax.eval_shape(regressor_lib.build_regressor(model_cfg).init, jax.random.key(0),
                            jnp.zeros((1, res, res, 3)), jnp.zeros((1, res, res, 1)))
  sd = {k: v for k, v in sd.items() if not k.endswith(".num_batches_tracked")}
  return rules_lib.apply_rules(sd, _rules(), rules_lib.flatten_shapes(abstract),
                               "latent-composition encoder")


def _generator(generator_dir: str) -> tuple[ml_collections.ConfigDict, dict]:
  g_cfg = checkpoint.read_config(
      generator_dir, kind="stylegan2", name=f"--generator {generator_dir}", user="the encoder",
      hint=" (a converted StyleGAN2 directory)").model
  models = checkpoint.restore_models(generator_dir)
  if "g_ema" not in models:
    raise UserError(f"--generator {generator_dir} holds no g_ema")
  return g_cfg, jax.tree.map(np.asarray, dict(models["g_ema"]))


def convert_encoder(obj, generator_dir: str | None = None):
  """A loaded encoder checkpoint + a StyleGAN2 directory -> (models, config, summary lines)."""
  if not generator_dir:
    raise UserError("a latent-composition encoder decodes through a StyleGAN2: pass "
                    "--generator GDIR (a directory written by convert_torch or train)")
  sd = obj.get("state_dict", obj)
  if any(k.startswith("module.") for k in sd):
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
  sd = {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        for k, v in sd.items()}
  g_cfg, g_vars = _generator(generator_dir)
  w_dim, head = int(g_cfg.w_dim), sd[f"{HEAD}.weight"].shape[0]
  res = int(g_cfg.resolution)
  if head % w_dim:
    raise UserError(f"encoder head has {head} outputs, not a multiple of the generator's "
                    f"w_dim {w_dim}")
  n_latents, want = head // w_dim, sg2.num_ws(res)
  if n_latents == 2 * want:
    raise UserError(f"encoder predicts {n_latents} latents = 2 x {want}: the VAE variant "
                    "(log-sigma and mean) is not supported; use the RGBM encoder")
  if n_latents != want:
    raise UserError(f"encoder predicts {n_latents} W+ latents but the {res} px generator in "
                    f"{generator_dir} takes num_ws={want}; pair it with the generator it was "
                    "trained for (latent-composition: 14 at 256 px, 16 car 512 px, 18 FFHQ)")
  in_ch = sd["conv1.weight"].shape[1]
  if in_ch not in (3, 4):
    raise UserError(f"encoder conv1 takes {in_ch} input channels; expected 4 (RGB+mask) or 3")
  depth, width = _depth(sd), int(sd["conv1.weight"].shape[0])
  model_cfg = regressor_lib.regressor_model_config(
      g_cfg, depth=depth, width=width, input_size=regressor_lib.DEFAULT_INPUT_SIZE,
      use_mask=in_ch == 4)
  e_vars = encoder_variables(sd, model_cfg)
  config = ml_collections.ConfigDict({"model": model_cfg})
  n_params = sum(int(np.prod(s)) for s in rules_lib.flatten_shapes(e_vars["params"]).values())
  summary = [
      f"latent-composition encoder: ResNet-{depth}, width {width}, "
      f"{'RGB+mask' if in_ch == 4 else 'RGB'} input area-resized to "
      f"{model_cfg.input_size}, W+ {n_latents} x {w_dim} ({n_params / 1e6:.2f}M params)",
      f"paired with the {res} px StyleGAN2 in {generator_dir} (g_ema)",
  ]
  return {"e": e_vars, "g_ema": g_vars}, config, summary
