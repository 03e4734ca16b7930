"""Convert PyTorch checkpoints into jaxspatial checkpoint directories.

    python -m jaxspatial.convert_torch stylegan2-ffhq-config-f.pt --out models/ffhq
    python -m jaxspatial.convert_torch CKPT.pt --target ssn --out models/ffhq-ssn
    python -m jaxspatial.convert_torch --net inception pt_inception-2015-12-05-6726825d.pth

StyleGAN2 checkpoints are rosinality/stylegan2-pytorch files: a dict with ``g_ema`` (used
for inference) and optionally ``g``, ``d``, ``latent_avg``, ``args``, optimiser states; or a
bare generator state dict. ``--net`` converts the metric networks' standard weight files
into ``$JAXSPATIAL_HOME``.
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
import zipfile

import numpy as np

from jaxspatial import checkpoint, cli
from jaxspatial import convert_rosinality as rosinality

TARGETS = ("stylegan2", "ssn")
NETS = ("inception", "vgg16", "alexnet", "lpips-vgg", "lpips-alex")


def read_torch_file(path: str | pathlib.Path, trust_pickle: bool = False):
  """``torch.load`` on CPU with ``weights_only=True`` (only ``argparse.Namespace`` allowed).

  ``trust_pickle`` allows arbitrary pickled objects: only for files you trust.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise cli.UserError(f"{path}: no such file")
  try:
    import torch
  except ImportError:
    raise cli.UserError("reading .pt files needs torch: pip install 'jaxspatial[torch]'") from None
  try:
    if trust_pickle:
      return torch.load(path, map_location="cpu", weights_only=False)
    with torch.serialization.safe_globals([argparse.Namespace]):
      return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    if "weights_only" in str(e) or "Unsupported global" in str(e):
      raise cli.UserError(
          f"{path} contains pickled objects beyond tensors and argparse.Namespace; if you "
          "trust the file, re-run with --trust-pickle") from None
    raise cli.UserError(f"{path}: not a readable PyTorch file ({_first_line(e)})") from None
  except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
    raise cli.UserError(f"{path}: not a readable PyTorch file, truncated or corrupt "
                        f"({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _numpy_state_dict(sd, what: str) -> dict[str, np.ndarray]:
  if not isinstance(sd, dict):
    raise cli.UserError(f"{what} is a {type(sd).__name__}, not a state dict")
  out = {}
  for k, v in sd.items():
    if not hasattr(v, "detach"):
      raise cli.UserError(f"{what}[{k!r}] is a {type(v).__name__}, not a tensor")
    out[k] = v.detach().cpu().float().numpy()
  return out


def convert_stylegan2(obj, *, w_avg_samples: int = 10_000, log=print):
  """A loaded rosinality checkpoint -> (models dict, config, summary lines)."""
  if isinstance(obj, dict) and "g_ema" in obj:
    g_ema = _numpy_state_dict(obj["g_ema"], "g_ema")
    g = _numpy_state_dict(obj["g"], "g") if "g" in obj else None
    d = _numpy_state_dict(obj["d"], "d") if "d" in obj else None
    latent_avg = obj.get("latent_avg")
    args = obj.get("args")
  elif isinstance(obj, dict) and rosinality.looks_like_generator(obj):
    g_ema, g, d, latent_avg, args = _numpy_state_dict(obj, "state dict"), None, None, None, None
  else:
    keys = sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
    raise cli.UserError(f"not a StyleGAN2 checkpoint: expected a rosinality dict with 'g_ema' "
                        f"or a generator state dict, found {keys}")
  cm_hint = getattr(args, "channel_multiplier", None)
  model_cfg = rosinality.infer_generator_config(g_ema, cm_hint)
  models = {"g_ema": rosinality.convert_generator(g_ema, model_cfg, "g_ema")}
  if g is not None:
    models["g"] = rosinality.convert_generator(g, model_cfg, "g")
  if d is not None:
    models["d"] = rosinality.convert_discriminator(d, model_cfg)
  if latent_avg is not None:
    w_avg = latent_avg.detach().cpu().float().numpy().reshape(-1)
    if w_avg.shape != (model_cfg.w_dim,):
      raise cli.UserError(f"latent_avg has shape {tuple(w_avg.shape)}; expected ({model_cfg.w_dim},)")
    w_avg_note = "w_avg from the checkpoint's latent_avg"
  else:
    w_avg = rosinality.mean_w(models["g_ema"], model_cfg, n=w_avg_samples, seed=0)
    w_avg_note = (f"no latent_avg in the checkpoint: w_avg computed from {w_avg_samples:,} "
                  "mapped z (seed 0)")
  for name in ("g_ema", "g"):
    if name in models:
      models[name]["buffers"]["w_avg"] = w_avg
  import ml_collections
  config = ml_collections.ConfigDict({"model": model_cfg})
  n_params = {k: sum(int(np.prod(a.shape)) for a in _leaves(v["params"])) for k, v in models.items()}
  summary = [
      f"StyleGAN2 {model_cfg.resolution}x{model_cfg.resolution}, w_dim {model_cfg.w_dim}, "
      f"n_mlp {model_cfg.n_mlp}, channel_multiplier {model_cfg.channel_multiplier}",
      "converted: " + ", ".join(f"{k} ({n / 1e6:.2f}M params)" for k, n in n_params.items()),
      w_avg_note,
  ]
  return models, config, summary


def _leaves(tree):
  if isinstance(tree, dict):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(
      prog="python -m jaxspatial.convert_torch",
      description="Convert a PyTorch checkpoint (rosinality StyleGAN2 .pt) into a jaxspatial "
                  "checkpoint directory that js.load() and every command read; or, with --net, "
                  "a metric network's standard weights into $JAXSPATIAL_HOME.")
  p.add_argument("path", nargs="?", help="the .pt/.pth file")
  p.add_argument("--out", help="output checkpoint directory (StyleGAN2 conversions)")
  p.add_argument("--target", default="stylegan2", choices=TARGETS,
                 help="what to build from the StyleGAN2 weights (default: stylegan2)")
  p.add_argument("--net", choices=NETS, help="convert a metric network's weights instead")
  p.add_argument("--trust-pickle", action="store_true",
                 help="allow arbitrary pickled objects (only for files you trust)")
  p.add_argument("--w-avg-samples", type=int, default=10_000,
                 help="z samples for w_avg when the file has no latent_avg (default 10000)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.net:
    from jaxspatial.metrics import weights
    out = weights.convert_net(args.net, args.path)
    print(f"converted {args.net} -> {out}")
    return
  if not args.path:
    raise cli.UserError("give the checkpoint file to convert (see --help)")
  if not args.out:
    raise cli.UserError("give --out DIR for the converted checkpoint")
  out = pathlib.Path(args.out)
  if checkpoint.checkpoint_root(out).exists() and not args.overwrite:
    raise cli.UserError(f"{out} already holds a checkpoint; pass --overwrite to replace it")
  obj = read_torch_file(args.path, args.trust_pickle)
  convert = CONVERTERS[args.target]
  models, config, summary = convert(obj, w_avg_samples=args.w_avg_samples)
  config.converted_from = str(pathlib.Path(args.path).absolute())
  if out.exists() and args.overwrite:
    import shutil
    shutil.rmtree(checkpoint.checkpoint_root(out), ignore_errors=True)
  where = checkpoint.save_model_dir(out, models, config)
  for line in summary:
    print(line)
  print(f"wrote {where} (open with js.load({str(out)!r}))")


def convert_ssn(obj, **kw):
  """StyleGAN2 checkpoint -> SSN transferred from it (``jaxspatial.models.ssn``)."""
  from jaxspatial.models import ssn
  models, config, summary = convert_stylegan2(obj, **kw)
  return ssn.transfer_from_stylegan2(models, config, summary)


CONVERTERS = {"stylegan2": convert_stylegan2, "ssn": convert_ssn}

if __name__ == "__main__":
  cli.run(main)
