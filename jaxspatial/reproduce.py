"""Reproduce the papers' claims as units of the committed results ledger.

A unit is one (target, setting, seed): it trains the model(s) it needs (reusing runs found
under --runs, a local cache), measures them, and writes one row,
OUT/results/<target>/<setting>-s<seed>.json. Pages (OUT/<target>.md and its figure) are
rebuilt from the rows alone. Several processes on one --runs and --out split the missing
units between them. Targets, units and budgets: docs/reproduction/README.md.

    python -m jaxspatial.reproduce --status                      # units done / missing, hours left
    nice -n 19 python -m jaxspatial.reproduce --budget 2h        # missing units, by priority
    python -m jaxspatial.reproduce spatialgan-comove --budget 90m
    python -m jaxspatial.reproduce spatialgan-table1 --units align-indoor-s0   # one unit
    python -m jaxspatial.reproduce drag-table2 --page-only       # the page from its rows
    python -m jaxspatial.reproduce ssn-lambda --scale smoke --seeds 2 --out /tmp/page
"""

from __future__ import annotations

import pathlib
import signal
import sys

from jaxspatial import cli, errors
from jaxspatial.reproduction import campaign, runs


def main(argv: list[str] | None = None) -> None:
  p = cli.ArgumentParser.for_command("reproduce", __doc__)
  p.add_argument("names", metavar="NAME", nargs="*",
                 help=f"targets (default: all, by priority): {', '.join(campaign.TARGETS)}")
  p.add_argument("--status", action="store_true",
                 help="print units done / missing and the estimated hours left, then exit")
  p.add_argument("--page-only", action="store_true",
                 help="rewrite the pages from the rows in OUT/results alone (no training)")
  p.add_argument("--budget", type=campaign.parse_budget, metavar="DURATION",
                 help="run missing units while the next one's estimate fits (2h, 90m, 2h30m, 3600s); "
                      "without it, every missing unit of the named targets runs")
  p.add_argument("--units", type=lambda text: [u for u in text.split(",") if u],
                 metavar="UNIT[,UNIT]",
                 help="run only these missing units of the named targets (SETTING-sSEED, as "
                      "--status lists them), in their planned order")
  p.add_argument("--seeds", type=int, default=None,
                 help="seeds 0..N-1 per setting (default: each target's own, at least 3 for "
                      "new targets)")
  p.add_argument("--scale", choices=campaign.SCALES, default="small",
                 help="small: the documented run lengths; smoke: tiny models at "
                      "initialisation, a pipeline check whose numbers mean nothing (needs "
                      "--out; default small)")
  p.add_argument("--runs", default="runs", metavar="DIR",
                 help="the local run cache, DIR/<scale>/<target>/<unit> (default runs)")
  p.add_argument("--out", default=None, metavar="DIR",
                 help="pages, OUT/results/ rows and OUT/references/ (default "
                      "docs/reproduction at the small scale)")
  args = p.parse_args(argv)
  unknown = [n for n in args.names if n not in campaign.TARGETS]
  if unknown:
    raise errors.UserError(f"unknown target {unknown[0]!r}; choose from "
                        f"{', '.join(campaign.TARGETS)}")
  if args.seeds is not None and args.seeds < 1:
    raise errors.UserError(f"--seeds must be at least 1, got {args.seeds}")
  if args.out is None and args.scale != "small":
    raise errors.UserError(f"--scale {args.scale} needs --out: its rows never go into "
                        "docs/reproduction")
  c = campaign.Campaign(pathlib.Path(args.out or "docs/reproduction"), pathlib.Path(args.runs),
                        args.scale, args.seeds)
  names = list(args.names) or list(campaign.TARGETS)
  if args.units is not None:
    if not args.names or args.status or args.page_only:
      raise errors.UserError("--units runs units: name their targets, without --status or "
                          "--page-only")
    known = {u.name for name in names for u in c.units(name)}
    unknown = [u for u in args.units if u not in known]
    if unknown or not args.units:
      raise errors.UserError(f"no unit {(unknown or [''])[0]!r} in {', '.join(names)}; its "
                          f"units: {', '.join(sorted(known))}")
  if args.status:
    print(c.status(names))
  elif args.page_only:
    for name in names:
      print(f"wrote {c.page(name)}")
  else:
    if not args.names and args.budget is None:
      raise errors.UserError("running every target's missing units needs --budget (see "
                          "--status for the hours left), or name the targets")
    try:
      for line in c.run_missing(names, args.budget, args.units):
        print(line, flush=True)
    except runs.Stopped as e:
      print(f"stopped: {e}", file=sys.stderr)
      sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
  cli.run(main)
