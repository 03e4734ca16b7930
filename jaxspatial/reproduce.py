"""Reproduce one of the papers' claims end to end and write its page.

Trains what is missing (runs found under --runs, named <scale>/<target>/<setting>-s<seed>, are
reused; a partial one resumes), evaluates every run and writes OUT/NAME.md with mean ± 95 %
Student-t intervals across seeds, every run's numbers, the exact commands, wall times and a
figure. Targets and their run lengths: docs/reproduction/README.md.

    python -m jaxspatial.reproduce ssn-lambda --seeds 3
    python -m jaxspatial.reproduce spatialgan-comove --seeds 3 --runs runs --out docs/reproduction
    python -m jaxspatial.reproduce ssn-lambda --scale smoke --seeds 2 --out /tmp/page
"""

from __future__ import annotations

import importlib

from jaxspatial import cli
from jaxspatial.reproduction import SCALES, TARGETS


def main(argv: list[str] | None = None) -> None:
  p = cli.ArgumentParser.for_command("reproduce", __doc__)
  p.add_argument("name", metavar="NAME", choices=sorted(TARGETS),
                 help=f"the claim to reproduce: {', '.join(TARGETS)}")
  p.add_argument("--seeds", type=int, default=3,
                 help="training seeds 0..N-1 per setting (default 3; at least 2 for intervals)")
  p.add_argument("--scale", choices=SCALES, default="small",
                 help="small: the documented run lengths (CPU hours); smoke: tiny models at "
                      "initialisation, a pipeline check whose numbers mean nothing (default "
                      "small)")
  p.add_argument("--runs", default="runs", metavar="DIR",
                 help="where runs are found and trained, under DIR/<scale>/ (default runs)")
  p.add_argument("--out", default="docs/reproduction", metavar="DIR",
                 help="where NAME.md and its figure are written (default docs/reproduction)")
  args = p.parse_args(argv)
  if args.seeds < 1:
    raise cli.UserError(f"--seeds must be at least 1, got {args.seeds}")
  from jaxspatial.reproduction import runs
  module, fn = TARGETS[args.name].split(":")
  page = getattr(importlib.import_module(module), fn)(
      runs.Session(args.runs, args.scale, args.seeds), args.out)
  print(f"wrote {page}")


if __name__ == "__main__":
  cli.run(main)
