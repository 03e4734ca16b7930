"""Export a jaxspatial StyleGAN2 back to PyTorch.

    python -m jaxspatial.export_torch runs/ffhq --format rosinality --out ffhq.pt

Writes a rosinality/stylegan2-pytorch checkpoint: ``g_ema`` (and ``g``, ``d`` when the
directory has them) as the state dicts its ``Generator`` / ``Discriminator`` load with
``load_state_dict`` (strict), plus ``latent_avg`` (our ``w_avg``). Load it with::

    g = Generator(size, style_dim, n_mlp, channel_multiplier=cm)
    g.load_state_dict(torch.load("ffhq.pt")["g_ema"])

(the constructor arguments are printed). Only architectures rosinality can build export: its
fixed channel table, z_dim = w_dim, no labels or conv_clamp, minibatch stddev 4 x 1.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile

import numpy as np

from jaxspatial import cli, errors
from jaxspatial import checkpoint
from jaxspatial.convert import rosinality

FORMATS = ("rosinality",)


def export_rosinality(directory: pathlib.Path, step: int | None = None) -> tuple[dict, str]:
  """A checkpoint directory -> (numpy checkpoint dict, the Generator constructor call)."""
  config = checkpoint.read_config(directory, step)
  model_cfg = config.model
  rosinality.exportable(model_cfg)
  models = checkpoint.restore_models(directory, step)
  out = {}
  for name in ("g_ema", "g"):
    if name in models:
      out[name] = rosinality.export_generator(models[name], model_cfg)
  if "g_ema" not in out and "g" in out:
    out["g_ema"] = out["g"]
  if not out:
    raise errors.UserError(f"{directory} holds no generator ('g_ema' or 'g')")
  if "d" in models:
    out["d"] = rosinality.export_discriminator(models["d"], model_cfg)
  g = models["g_ema"] if "g_ema" in models else models["g"]
  out["latent_avg"] = np.asarray(g["buffers"]["w_avg"], np.float32)
  ctor = (f"Generator(size={model_cfg.resolution}, style_dim={model_cfg.w_dim}, "
          f"n_mlp={model_cfg.n_mlp}, channel_multiplier={model_cfg.channel_multiplier})")
  return out, ctor


def save_torch(tree: dict, path: pathlib.Path) -> None:
  """``torch.save`` of nested dicts of numpy arrays as tensors, written atomically."""
  try:
    import torch
  except ImportError:
    raise errors.UserError("writing .pt files needs torch: pip install 'jaxspatial[torch]'") from None

  def tensors(x):
    if isinstance(x, dict):
      return {k: tensors(v) for k, v in x.items()}
    return torch.from_numpy(np.array(x))   # a writable copy (restored arrays are read-only)

  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  os.close(fd)
  try:
    torch.save(tensors(tree), tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser(
      prog="python -m jaxspatial.export_torch",
      description="Export a jaxspatial StyleGAN2 checkpoint directory to a PyTorch file.")
  p.add_argument("directory", help="checkpoint directory (a training --workdir or a "
                                   "convert_torch --out)")
  p.add_argument("--format", default="rosinality", choices=FORMATS,
                 help="rosinality: a stylegan2-pytorch checkpoint {g_ema, g, d, latent_avg} "
                      "(default)")
  p.add_argument("--out", required=True, help="the .pt file to write")
  p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  out = pathlib.Path(args.out)
  if out.exists() and not args.overwrite:
    raise errors.UserError(f"{out} exists; pass --overwrite to replace it")
  tree, ctor = export_rosinality(pathlib.Path(args.directory), args.step)
  out.parent.mkdir(parents=True, exist_ok=True)
  save_torch(tree, out)
  nets = ", ".join(k for k in ("g_ema", "g", "d") if k in tree)
  print(f"wrote {out}: {nets}, latent_avg; load with {ctor}.load_state_dict("
        f"torch.load({str(out)!r})['g_ema'])")


if __name__ == "__main__":
  cli.run(main)
