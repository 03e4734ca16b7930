"""Convert PyTorch checkpoints into jaxspatial checkpoint directories.

    python -m jaxspatial.convert_torch stylegan2-ffhq-config-f.pt --out models/ffhq
    python -m jaxspatial.convert_torch stylegan2-ffhq-1024x1024.pkl --out models/ffhq-ada
    python -m jaxspatial.convert_torch CKPT.pt --target ssn --out models/ffhq-ssn
    python -m jaxspatial.convert_torch --net inception pt_inception-2015-12-05-6726825d.pth
    python -m jaxspatial.convert_torch ENC.pth --generator models/church --out models/church-enc

The format is detected (:mod:`jaxspatial.convert.formats`): rosinality/stylegan2-pytorch ``.pt``
files (a dict with ``g_ema`` and optionally ``g``, ``d``, ``latent_avg``, ``args``, optimiser
states; or a bare generator state dict), stylegan2-ada-pytorch and EqGAN-SA network pickles
(read without executing anything: :mod:`jaxspatial.convert.safe_pickle`; EqGAN-SA's become a
SpatialGAN), and latent-composition encoders, paired with the StyleGAN2 directory given by
``--generator`` into a regressor directory. ``--net`` converts the metric networks' standard
weight files into ``$JAXSPATIAL_HOME``.
"""

from __future__ import annotations

import argparse
import pathlib
import time

from jaxspatial import cli, errors, families
from jaxspatial import checkpoint
from jaxspatial.convert import formats, safe_pickle
from jaxspatial.convert import torch as torch_io

NETS = ("inception", "vgg16", "alexnet", "lpips-vgg", "lpips-alex")


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser(
      prog="python -m jaxspatial.convert_torch",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description="Convert a PyTorch checkpoint into a jaxspatial checkpoint directory that "
                  "js.load() and every command read; or, with --net, a metric network's "
                  "standard weights into $JAXSPATIAL_HOME.",
      epilog="formats (detected from the file):\n" + formats.help_text() + "\n\nNetwork "
             "pickles are read with an allow-list of globals: their embedded source code is "
             "never executed, so they need no --trust-pickle.")
  p.add_argument("path", nargs="?", help="the .pt/.pth/.pkl file")
  p.add_argument("--out", help="output checkpoint directory (StyleGAN2 conversions)")
  p.add_argument("--target", default="stylegan2", choices=sorted(families.converters()),
                 help="what to build from the StyleGAN2 weights (default: stylegan2)")
  p.add_argument("--generator", metavar="GDIR",
                 help="for a latent-composition encoder: the converted StyleGAN2 directory it "
                      "decodes through (its num_ws must equal the encoder's W+ count); the "
                      "output is a regressor directory")
  p.add_argument("--net", choices=NETS, help="convert a metric network's weights instead")
  p.add_argument("--trust-pickle", action="store_true",
                 help="allow arbitrary pickled objects in a torch.save .pt file (only for files "
                      "you trust; network pickles are always read safely, without it)")
  p.add_argument("--w-avg-samples", type=int, default=10_000,
                 help="z samples for w_avg when a rosinality file has no latent_avg "
                      "(default 10000)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.net:
    from jaxspatial.nets import weights
    out = weights.convert_net(args.net, args.path)
    print(f"converted {args.net} -> {out}")
    return
  if not args.path:
    raise errors.UserError("give the checkpoint file to convert (see --help)")
  if not args.out:
    raise errors.UserError("give --out DIR for the converted checkpoint")
  out = pathlib.Path(args.out)
  if checkpoint.checkpoint_root(out).exists() and not args.overwrite:
    raise errors.UserError(f"{out} already holds a checkpoint; pass --overwrite to replace it")
  start = time.perf_counter()
  path = errors.existing_file(args.path, "a checkpoint file")
  container = formats.container_of(path)
  if container == formats.TORCH:
    obj = torch_io.read_torch_file(path, args.trust_pickle)
  else:
    obj = safe_pickle.load_network_pickle(path)
  fmt = formats.detect(obj, container, path)
  if fmt.name == "latent-composition":
    convert, options = fmt.function("convert"), {"generator_dir": args.generator}
  elif args.generator:
    raise errors.UserError(f"--generator is for latent-composition encoders; {path} is a "
                        f"{fmt.name} file")
  elif fmt.name == "rosinality":   # the families' --target converters read rosinality files
    convert = families.resolve(families.converters()[args.target])
    options = {"w_avg_samples": args.w_avg_samples}
  elif args.target == "stylegan2":
    convert, options = fmt.function("convert"), {"w_avg_samples": args.w_avg_samples}
  else:
    raise errors.UserError(f"--target {args.target} converts rosinality checkpoints; {path} is a "
                        f"{fmt.name} file")
  models, config, summary = convert(obj, **options)
  config.converted_from = str(path.absolute())
  config.converted_format = fmt.name
  if out.exists() and args.overwrite:
    import shutil
    shutil.rmtree(checkpoint.checkpoint_root(out), ignore_errors=True)
  where = checkpoint.save_model_dir(out, models, config)
  print(f"format: {fmt.name}")
  for line in summary:
    print(line)
  print(f"wrote {where} in {time.perf_counter() - start:.1f} s "
        f"(open with js.load({str(out)!r}))")


if __name__ == "__main__":
  cli.run(main)
