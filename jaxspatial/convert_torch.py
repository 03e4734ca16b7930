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

from jaxspatial import cli, families
from jaxspatial.api import checkpoint
from jaxspatial.convert import torch as torch_io

NETS = ("inception", "vgg16", "alexnet", "lpips-vgg", "lpips-alex")


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser(
      prog="python -m jaxspatial.convert_torch",
      description="Convert a PyTorch checkpoint (rosinality StyleGAN2 .pt) into a jaxspatial "
                  "checkpoint directory that js.load() and every command read; or, with --net, "
                  "a metric network's standard weights into $JAXSPATIAL_HOME.")
  p.add_argument("path", nargs="?", help="the .pt/.pth file")
  p.add_argument("--out", help="output checkpoint directory (StyleGAN2 conversions)")
  p.add_argument("--target", default="stylegan2", choices=sorted(families.converters()),
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
  obj = torch_io.read_torch_file(args.path, args.trust_pickle)
  convert = families.resolve(families.converters()[args.target])
  models, config, summary = convert(obj, w_avg_samples=args.w_avg_samples)
  config.converted_from = str(pathlib.Path(args.path).absolute())
  if out.exists() and args.overwrite:
    import shutil
    shutil.rmtree(checkpoint.checkpoint_root(out), ignore_errors=True)
  where = checkpoint.save_model_dir(out, models, config)
  for line in summary:
    print(line)
  print(f"wrote {where} (open with js.load({str(out)!r}))")


if __name__ == "__main__":
  cli.run(main)
