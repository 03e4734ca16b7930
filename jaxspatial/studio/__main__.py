r"""Serve the jaxspatial studio: edit generated images and uploaded photos in a browser.

    python -m jaxspatial.studio --checkpoint runs/demo --checkpoint runs/sgan \
        --checkpoint runs/ssn --checkpoint runs/reg --out studio-out

Loads every checkpoint, compiles each model's edits once (warm-up, the projection of photos
included), then prints the page's address with this launch's access token,
``ready: http://HOST:PORT/?token=...``: only that URL opens the studio (the page then keeps the
token in a cookie; scripts send it as the header X-Studio-Token), so other web pages the
browser visits cannot drive it. A photo uploaded on a StyleGAN2, SSN or
SpatialGAN panel is projected into the model (its progress streams to the page) and then edited
like a generated image; on a regressor panel it becomes a collage source. Each browser tab is
its own session with undo/redo; at most --max-sessions are kept (the least recently used is
dropped), and together within --max-memory (oldest undo steps go first). Nothing is written on
the server unless --out names a folder (the page's "save" button, at most 1000 files or 1 GiB
there); downloads go to the browser.
"""

from __future__ import annotations

import argparse
import ipaddress
import pathlib
import sys
import time

from jaxspatial import cli, errors


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("studio", __doc__)
  p.add_argument("--checkpoint", action="append", required=True, metavar="DIR",
                 help="a model directory (train --workdir or convert_torch --out); repeat to "
                      "load several, of any kinds")
  p.add_argument("--host", default="127.0.0.1",
                 help="address to bind (default 127.0.0.1: this machine only; anything else "
                      "lets other machines that have the token edit with your models, and is "
                      "warned about); requests must name it, or a loopback name, as their Host")
  p.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
  p.add_argument("--out", help="folder the page's save button writes PNG + latent.npz into, "
                               "never overwriting, up to 1000 files or 1 GiB there (default: "
                               "none, saving on the server is off)")
  p.add_argument("--max-sessions", type=int, default=16,
                 help="browser tabs kept at once; the least recently used is dropped (default 16)")
  p.add_argument("--max-history", type=int, default=50,
                 help="undo steps kept per tab (default 50)")
  p.add_argument("--max-memory", type=int, default=1024, metavar="MiB",
                 help="memory for every tab's history together; past it the oldest undo steps, "
                      "then the least recently used tabs, are dropped (default 1024)")
  p.add_argument("--token", help="the access token (default: a new random one per launch; "
                                 "fix one for scripts)")
  return p.parse_args(argv)


def is_loopback(host: str) -> bool:
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def address(host: str, port: int, token: str) -> str:
  """The URL the studio prints on ``ready:``: the only one that opens it (an IPv6 host in
  brackets, as a browser wants it)."""
  return f"http://{f'[{host}]' if ':' in host else host}:{port}/?token={token}"


def build(args: argparse.Namespace):
  """Loads and warms up every checkpoint -> the :class:`~jaxspatial.studio.server.Studio`."""
  from jaxspatial.studio import engines, server, sessions
  loaded = []
  for path in args.checkpoint:
    if not pathlib.Path(path).is_dir():
      raise errors.UserError(f"--checkpoint {path}: no such directory")
    engine = engines.load_engine(path)
    start = time.time()
    print(f"{engine.name}: {engine.kind} {engine.resolution}px, compiling its edits ...",
          file=sys.stderr, flush=True)
    engine.warm_up()
    print(f"{engine.name}: ready in {time.time() - start:.1f} s", file=sys.stderr, flush=True)
    loaded.append(engine)
  store = sessions.SessionStore(args.max_sessions, args.max_history, args.max_memory * 2 ** 20)
  out = pathlib.Path(args.out) if args.out else None
  return server.Studio(loaded, store, out, token=args.token, host=args.host)


def main(argv=None) -> None:
  args = parse_args(argv)
  if not 0 < args.port < 65536:
    raise errors.UserError(f"--port must be 1..65535, got {args.port}")
  if args.max_sessions < 1 or args.max_history < 2 or args.max_memory < 1:
    raise errors.UserError("--max-sessions and --max-memory must be >= 1 and --max-history >= 2")
  if args.token is not None:
    from jaxspatial.studio.server import check_token
    check_token(args.token)
  try:
    import uvicorn
  except ImportError:
    raise errors.UserError("the studio needs its extra: pip install 'jaxspatial[studio]'") from None
  if not is_loopback(args.host):
    print(f"warning: binding {args.host}: anyone who can reach this address and learns the "
          "token (it travels unencrypted) can use the studio", file=sys.stderr)
  studio = build(args)
  from jaxspatial.studio import server
  print(f"ready: {address(args.host, args.port, studio.token)}", file=sys.stderr, flush=True)
  uvicorn.Server(server.uvicorn_config(server.create_app(studio), args.host, args.port)).run()


if __name__ == "__main__":
  cli.run(main)
