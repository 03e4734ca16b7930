"""The studio's edits as request handlers: check the JSON, call the engine, return a state.

``OPS[name](session, body, studio) -> State | None`` runs under the session's lock (None:
nothing new for the history, e.g. saving); ``STREAMED[name](session, body)`` yields progress
events and ends with ``{"type": "done", ...}`` after pushing the new state. Every check that
fails raises :class:`~jaxspatial.errors.UserError` (a 400) naming the field, in one line: a
value is quoted through :func:`shown` (a list by its length, a huge integer by its size), never
whole, and a list's length is checked before its elements (the server has already refused
bodies of more than a few thousand arrays, before parsing them).

Which edits a model offers is its engine's (``Engine.ops``, the engine its family names in
:mod:`jaxspatial.families`): :func:`check_kind` refuses the others, naming the kinds that offer
them. This module imports nothing of the server (the server imports it): the PNG helpers
:func:`png` / :func:`data_url` live here.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import os
import queue
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from jaxspatial import imageio
from jaxspatial.edit import drag as drag_lib
from jaxspatial.edit import projection as proj_lib
from jaxspatial.errors import UserError
from jaxspatial.models.stylegan2 import NOISE_MODES
from jaxspatial.studio.engines import (CANDIDATES, MAX_POINTS, PROJECT_STEPS, State,
                                       kinds_offering)

MAX_UPLOAD_BYTES = 16 * 2 ** 20
MAX_UPLOAD_PIXELS = 4096 * 4096
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")     # Pillow decodes ~40 formats; a photo needs these

# requests every engine answers; every other op is offered by the engines that list it in
# their ``ops`` (``Engine.ops``)
EVERY_ENGINE = ("generate", "undo", "redo", "reset", "upload", "save")


def check_kind(engine, op: str) -> None:
  """UserError unless ``engine`` offers ``op``, naming the kinds whose engines do."""
  if op not in EVERY_ENGINE and op not in engine.ops:
    raise UserError(f"{op!r} needs a {' or '.join(kinds_offering(op))} model; {engine.name} is "
                    f"{engine.kind}")


def png(image: np.ndarray) -> bytes:
  """PNG bytes of an image in [-1, 1], or of one already uint8 (a session's history)."""
  buf = io.BytesIO()
  Image.fromarray(image if image.dtype == np.uint8 else imageio.to_uint8(image)).save(
      buf, format="PNG")
  return buf.getvalue()


def data_url(image: np.ndarray) -> str:
  return "data:image/png;base64," + base64.b64encode(png(image)).decode()


# ---------------------------------------------------------------------------- field checks


def shown(v: Any) -> str:
  """``v`` quoted for a one-line error, short whatever it is."""
  if isinstance(v, (list, dict)):
    return f"a {'list' if isinstance(v, list) else 'JSON object'} of {len(v)}"
  if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
    return f"an integer of {v.bit_length()} bits"
  text = repr(v)
  return text if len(text) <= 40 else text[:37] + "..."


def _real(v: Any) -> bool:
  """A JSON number that is finite: Python ints are exact (``10**400`` included), floats not NaN."""
  return (isinstance(v, int) and not isinstance(v, bool)) or (
      isinstance(v, float) and math.isfinite(v))


def integer(body: dict, key: str, default: int | None, lo: int, hi: int) -> int:
  v = body.get(key, default)
  if not _real(v) or v != int(v):
    raise UserError(f"{key} must be an integer, got {shown(v)}")
  if not lo <= v <= hi:
    raise UserError(f"{key} must lie in [{lo}, {hi}], got {shown(v)}")
  return int(v)


def number(body: dict, key: str, default: float | None, lo: float, hi: float) -> float:
  v = body.get(key, default)
  if not _real(v):
    raise UserError(f"{key} must be a number, got {shown(v)}")
  if not lo <= v <= hi:
    raise UserError(f"{key} must lie in [{lo}, {hi}], got {shown(v)}")
  return float(v)


def choice(body: dict, key: str, default: str, options) -> str:
  v = body.get(key, default)
  if not isinstance(v, str) or v not in options:
    raise UserError(f"{key} must be one of {', '.join(options)}, got {shown(v)}")
  return v


def flag(body: dict, key: str, default: bool) -> bool:
  v = body.get(key, default)
  if not isinstance(v, bool):
    raise UserError(f"{key} must be true or false, got {shown(v)}")
  return v


def pairs(body: dict, key: str, bound: int | tuple[int, int], max_len: int,
          kind=float) -> list[tuple]:
  """A list of at most ``max_len`` ``[a, b]`` pairs inside ``[0, bound)`` (per coordinate)."""
  v = body.get(key)
  hi = (bound, bound) if isinstance(bound, int) else bound
  if isinstance(v, list) and len(v) > max_len:
    raise UserError(f"{key}: {len(v)} pairs, at most {max_len}")
  if not isinstance(v, list) or not all(
      isinstance(p, list) and len(p) == 2 and all(_real(c) for c in p) for p in v):
    raise UserError(f"{key} must be a list of [row, col] pairs, got {shown(v)}")
  for p in v:
    if not (0 <= p[0] <= hi[0] - 1 and 0 <= p[1] <= hi[1] - 1):
      raise UserError(f"{key}: [{shown(p[0])}, {shown(p[1])}] lies outside the {hi[0]}x{hi[1]} "
                      f"{'grid' if kind is int else 'image'}")
    if kind is int and (p[0] != int(p[0]) or p[1] != int(p[1])):
      raise UserError(f"{key}: {p} is not a pair of integers")
  return [(kind(p[0]), kind(p[1])) for p in v]


def decode_image(data: bytes, what: str, formats=UPLOAD_FORMATS,
                 size: int | None = None) -> Image.Image:
  """Pillow image from untrusted bytes, only of ``formats`` (each other decoder Pillow has is
  attack surface a photo does not need); its size is checked from the header, before a pixel
  is decoded (over :data:`MAX_UPLOAD_PIXELS`, or not ``size`` x ``size`` when given). One-line
  UserError for anything it cannot read."""
  try:
    img = Image.open(io.BytesIO(data), formats=formats)
    if img.width * img.height > MAX_UPLOAD_PIXELS:
      raise UserError(f"{what} is {img.width}x{img.height}: over {MAX_UPLOAD_PIXELS} pixels")
    if size is not None and img.size != (size, size):
      raise UserError(f"{what} is {img.width}x{img.height}; the model makes {size}x{size}")
    img.load()
  except UserError:
    raise
  except Image.UnidentifiedImageError:
    raise UserError(f"{what} is not a readable image (it must be "
                    f"{', '.join(formats).replace('WEBP', 'WebP')})") from None
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise UserError(f"{what} is not a readable image ({type(e).__name__})") from None
  return img


def mask_from(v: Any, size: int, what: str) -> np.ndarray:
  """A PNG data URL of ``size`` x ``size`` -> (size, size, 1) float32 in {0, 1}: white = 1,
  black or transparent = 0 (the image is laid over black first)."""
  if not isinstance(v, str) or not v.startswith("data:image/png;base64,"):
    raise UserError(f"{what} must be a PNG data URL")
  try:
    raw = base64.b64decode(v.split(",", 1)[1], validate=True)
  except ValueError:
    raise UserError(f"{what} is not valid base64") from None
  img = decode_image(raw, what, formats=("PNG",), size=size)
  img = Image.alpha_composite(Image.new("RGBA", img.size, "black"), img.convert("RGBA"))
  return (np.asarray(img.convert("L"))[..., None] > 127).astype(np.float32)


# ---------------------------------------------------------------------------- plain edits


def op_generate(session, body, studio) -> State:
  engine, s = session.engine, session.state
  seed = integer(body, "seed", s.seed, 0, 2 ** 31 - 1)
  mode = s.noise if s.noise in NOISE_MODES else "const"     # after a photo: "projected"
  return engine.new(seed, number(body, "truncation", s.truncation, 0.0, 2.0),
                    _noise(body, mode))


def _noise(body, default):
  return choice(body, "noise", default, NOISE_MODES)


def op_settings(session, body, studio) -> State:
  s = session.state
  return session.engine.settings(s, number(body, "truncation", s.truncation, 0.0, 2.0),
                                 _noise(body, s.noise))


def op_undo(session, body, studio):
  session.undo()


def op_redo(session, body, studio):
  session.redo()


def op_reset(session, body, studio):
  session.candidates = []
  return session.reset()


def op_heatmap(session, body, studio) -> State:
  res = session.engine.resolution
  what = choice(body, "op", None, ("move", "scale", "remove"))
  kw = {}
  if what == "move":
    kw = {"row": number(body, "row", None, 0, res - 1),
          "col": number(body, "col", None, 0, res - 1)}
  elif what == "scale":
    kw = {"factor": number(body, "factor", None, 0.1, 10.0)}
  n = session.state.heatmaps.num_centers
  return session.engine.heatmap_edit(session.state, what, integer(body, "index", None, 0, n - 1),
                                     **kw)


def op_new_latent(session, body, studio) -> State:
  return session.engine.new_latent(session.state,
                                   integer(body, "seed", session.state.seed + 1, 0, 2 ** 31 - 1))


def op_restyle(session, body, studio) -> State:
  n = session.state.heatmaps.num_centers
  return session.engine.restyle(session.state, integer(body, "index", None, 0, n - 1),
                                integer(body, "seed", session.state.seed + 1, 0, 2 ** 31 - 1))


def op_resample(session, body, studio):
  engine = session.engine
  grid = tuple(engine.model.grid)
  blocks = pairs(body, "blocks", grid, grid[0] * grid[1], kind=int)
  if not blocks:
    raise UserError("select at least one block to resample")
  session.candidates = engine.resample(session.state, blocks,
                                       integer(body, "seed", session.state.seed + 1, 0, 2 ** 30))


def op_pick(session, body, studio) -> State:
  if not session.candidates:
    raise UserError("no candidates to pick from; resample first")
  pick = session.candidates[integer(body, "index", None, 0, CANDIDATES - 1)]
  session.candidates = []
  return pick


def op_source(session, body, studio) -> State:
  seed = integer(body, "seed", None, 0, 2 ** 31 - 1)
  return session.engine.add_source(session.state, session.engine.source(seed), f"source {seed}")


def op_remove_source(session, body, studio) -> State:
  return session.engine.remove_source(session.state,
                                      integer(body, "index", None, 0, len(session.state.sources)))


def op_upload(session, body: bytes, studio) -> State | None:
  """A photo: what the engine makes of it (``Engine.upload``: the regressor's a new collage
  source), else the target of the next ``project``. It must be RGB; another size is
  centre-cropped and resized, and ``session.notice`` says so."""
  engine = session.engine
  img = decode_image(body, "the upload")
  x, session.notice = imageio.rgb_target(img, engine.resolution, "the upload")
  new = engine.upload(session.state, x, f"upload {img.width}x{img.height}")
  if new is None:
    session.target = x
  return new


def op_composite(session, body, studio) -> State:
  masks = body.get("masks")
  if not isinstance(masks, list):
    raise UserError("masks must be a list of PNG data URLs, one per source")
  if len(masks) != len(session.state.sources):
    raise UserError(f"{len(masks)} masks for {len(session.state.sources)} sources")
  res = session.engine.resolution
  masks = [mask_from(m, res, f"mask {k}") for k, m in enumerate(masks)]
  return session.engine.composite(session.state, masks, session.tuned)


def op_save(session, body, studio):
  """The image and its latent into ``--out`` as ``NAME_SID_NNNN.png`` + ``.npz``: the first
  number whose two files are both new, each created exclusively (``O_EXCL``: no save, of this
  tab or another, ever overwrites one), refused once ``--out`` holds ``studio.max_saves``
  files or ``studio.max_save_bytes`` bytes (a page cannot fill the disk)."""
  out = studio.out
  if out is None:
    raise UserError("start the studio with --out DIR to save on the server (or use the "
                    "download links)")
  out.mkdir(parents=True, exist_ok=True)
  files = [e for e in os.scandir(out) if e.is_file(follow_symlinks=False)]
  held = sum(e.stat(follow_symlinks=False).st_size for e in files)
  image = png(session.state.image)
  buf = io.BytesIO()
  np.savez(buf, **session.engine.export(session.state))
  if len(files) + 2 > studio.max_saves or held + len(image) + buf.tell() > studio.max_save_bytes:
    raise UserError(f"--out holds {len(files)} files, {held / 2 ** 20:.1f} MiB: the limit is "
                    f"{studio.max_saves} files, {studio.max_save_bytes / 2 ** 20:.0f} MiB; move "
                    "them away to save more")
  prefix = f"{session.engine.name}_{session.sid[:8]}_"
  number = sum(e.name.startswith(prefix) for e in files) // 2
  while True:
    stem = out / f"{prefix}{number:04d}"
    try:
      with open(stem.with_suffix(".png"), "xb") as f:
        try:
          with open(stem.with_suffix(".npz"), "xb") as g:
            g.write(buf.getvalue())
        except FileExistsError:
          os.unlink(f.name)
          raise
        f.write(image)
      return None
    except FileExistsError:
      number += 1


OPS = {"generate": op_generate, "settings": op_settings, "undo": op_undo, "redo": op_redo,
       "reset": op_reset, "heatmap": op_heatmap, "new_latent": op_new_latent,
       "restyle": op_restyle, "resample": op_resample, "pick": op_pick, "source": op_source,
       "remove_source": op_remove_source, "upload": op_upload, "composite": op_composite,
       "save": op_save}


# ---------------------------------------------------------------------------- streamed


def _ms_per_step(start: float, steps: int) -> float:
  return round((time.perf_counter() - start) * 1e3 / max(steps, 1), 2)


def drag_report(before: np.ndarray, after: np.ndarray, handles: Any, targets: Any,
                tracked: Any, converged: bool) -> list[dict]:
  """Per handle what a drag from uint8 image ``before`` to ``after`` did: the fields of
  :func:`jaxspatial.edit.drag.report`, its ``text`` and ``warnings`` as ``python -m
  jaxspatial.drag`` prints them -- the page shows the command's report, measured on the images
  the page showed. The lines name the points to 0.1 px (a click lands on, say, row 7.98145)."""
  reports = drag_lib.report(imageio.from_uint8(before), imageio.from_uint8(after), handles,
                            targets, tracked)
  named = zip(np.round(handles, 1), np.round(targets, 1), reports)
  return [{**dataclasses.asdict(r), "text": drag_lib.describe_report(k, h, t, r),
           "warnings": drag_lib.report_warnings(k, h, r, converged)}
          for k, (h, t, r) in enumerate(named, 1)]


def stream_drag(session, body) -> Iterator[dict]:
  """DragGAN, one event per step: the image, the tracked handles, the step counter; the
  last event (arrived, out of steps, or stopped) adds the :func:`drag_report`."""
  engine = session.engine
  res = engine.resolution
  handles = pairs(body, "handles", res, MAX_POINTS)
  targets = pairs(body, "targets", res, MAX_POINTS)
  mask = body.get("mask")
  mask = None if mask is None else mask_from(mask, res, "mask")
  steps = engine.drag(session.state, handles, targets, mask=mask,
                      w_space=flag(body, "w_space", False), coarse=flag(body, "coarse", True),
                      max_steps=integer(body, "max_steps", 200, 1, 1000),
                      stop=session.stop.is_set)
  before = session.state.image               # uint8, as the history keeps it
  start = time.perf_counter()
  for info, new in steps:
    event = {"type": "step" if new is None else "done", "step": info.step,
             "handles": info.handles.tolist(), "image": data_url(info.image),
             "ms_per_step": _ms_per_step(start, info.step)}
    if new is not None:
      after = session.push(new).image
      event.update(converged=bool(info.done), stopped=session.stop.is_set(),
                   report=drag_report(before, after, handles, targets, info.handles,
                                      bool(info.done)))
    yield event


def threaded(work: Callable[[Callable[[dict], None]], Any],
             cancel: Callable[[], None]) -> Iterator[dict]:
  """Runs ``work(emit)`` in a worker thread and yields each event it ``emit`` s as it comes;
  ``yield from`` it returns what ``work`` returned (its exception is raised in the stream).
  Closed before the end (the page went away), it calls ``cancel()`` to end the work early and
  waits for the worker to notice (one step), so that nothing computes for a session after its
  stream released it."""
  events: queue.Queue = queue.Queue()
  out: dict[str, Any] = {}

  def run():
    try:
      out["value"] = work(events.put)
    except Exception as e:  # noqa: BLE001 -- re-raised in the stream below
      out["error"] = e
    finally:
      events.put(None)
  worker = threading.Thread(target=run, daemon=True)
  worker.start()
  finished = False
  try:
    while (event := events.get()) is not None:
      yield event
    finished = True
  finally:
    if not finished:
      cancel()
      worker.join()
  if "error" in out:
    raise out["error"]
  return out["value"]


def stream_finetune(session, body) -> Iterator[dict]:
  """The paper's per-image finetuning of the regressor on the current collage."""
  engine, state = session.engine, session.state
  steps = integer(body, "steps", 30, 1, 500)
  if not any(m.any() for m in state.masks):
    raise UserError("brush a part on a source first: finetuning needs known pixels")
  yield {"type": "step", "step": 0, "steps": steps}
  taken = [0]

  def work(emit):
    def callback(i):
      taken[0] = i + 1
      emit({"type": "step", "step": i + 1, "steps": steps})
      return session.stop.is_set()
    return engine.finetune(state, steps, callback)
  start = time.perf_counter()
  session.tuned = yield from threaded(work, session.stop.set)
  session.push(engine.composite(state, list(state.masks), session.tuned).replace(
      edit=f"finetuned {taken[0]} steps"))
  yield {"type": "done", "step": taken[0], "steps": steps,
         "ms_per_step": _ms_per_step(start, taken[0]), "stopped": session.stop.is_set()}


def stream_project(session, body) -> Iterator[dict]:
  """Projects the uploaded photo (``POST .../upload`` first): an event per step (its
  ``PREVIEWS`` snapshots add the projection so far, its loss and PSNR), then the projected
  photo becomes the current state (undo returns to the image before)."""
  engine, target = session.engine, session.target
  if target is None:
    raise UserError("upload a photo first: POST the image to .../upload, then project")
  steps = integer(body, "steps", PROJECT_STEPS, 1, 5000)
  loss = choice(body, "loss", engine.losses[0], engine.losses)
  spaces = engine.model.projection_spaces
  space = choice(body, "space", spaces[0], spaces)
  yield {"type": "step", "step": 0, "steps": steps}

  def work(emit):
    def snapshot(step, images, dist):
      emit({"type": "step", "step": step, "steps": steps, "loss": float(dist[0]),
            "psnr": round(float(proj_lib.psnr(images, target[None])[0]), 2),
            "image": data_url(images[0])})
    return engine.project(session.state, target, steps=steps, loss=loss, space=space,
                          callback=lambda i: emit({"type": "step", "step": i + 1, "steps": steps}),
                          on_snapshot=snapshot, stop=session.stop.is_set)
  start = time.perf_counter()
  new = session.push((yield from threaded(work, session.stop.set)))
  image = imageio.from_uint8(new.image)
  yield {"type": "done", "step": new.projection_steps, "steps": steps,
         "psnr": round(float(proj_lib.psnr(image[None], target[None])[0]), 2),
         "ms_per_step": _ms_per_step(start, new.projection_steps),
         "stopped": session.stop.is_set()}


STREAMED = {"drag": stream_drag, "finetune": stream_finetune, "project": stream_project}
