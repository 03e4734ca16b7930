"""What the studio can do with each kind of model: one engine per loaded checkpoint.

An engine turns a request into a new :class:`State` by calling the library's public API
(``js.load`` models, :mod:`jaxspatial.edit.drag`, ``Heatmaps`` edits, ``js.ssn.resample_blocks``,
``m.project`` and :func:`~jaxspatial.edit.projection.resampled_projection` for uploaded photos,
``RegressorModel.composite`` / ``finetune``); it never holds per-tab data (that is the
:class:`~jaxspatial.studio.sessions.Session`'s). :meth:`Engine.warm_up` runs every edit once
on a throw-away state, so that each jitted function is compiled before the page says ready.

A generator's state is always rendered with explicit noise maps (the mode's, or a projection's),
so a drag or a heatmap move of a projected photo runs the same compiled programs as one of a
generated image, and ``latent.npz`` holds exactly the maps the page shows. The module is one
file of ~430 lines on purpose: the four engines share :class:`State` and the base engine's
latents, rendering and export.

Which engine serves a model is its family's (``families.Family.studio``, :func:`load_engine`);
what it offers is the engine's: ``edits`` (the page's controls) and ``ops`` (the requests
:mod:`~jaxspatial.studio.ops` lets through). A family whose model is a ``GeneratorModel`` with
the edit layer's hooks gets latents, projection and (if ``draggable``) DragGAN from
:class:`Engine` as it is.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable, Iterator

import numpy as np

from jaxspatial import families
from jaxspatial.edit import drag as drag_lib
from jaxspatial.edit import projection as proj_lib
from jaxspatial.errors import UserError
from jaxspatial.losses import regressor as regression
from jaxspatial.models.heatmaps import Heatmaps

MAX_POINTS = 8          # DragGAN handle/target pairs per drag (one compiled step for all)
CANDIDATES = 6          # SSN resampling candidates per request
MAX_SOURCES = 4         # regressor collage layers
PROJECT_STEPS = 300     # default Adam steps of a photo's projection
PREVIEWS = 20           # projection images streamed while it runs


@dataclasses.dataclass(frozen=True)
class State:
  """One entry of a session's history (immutable; edits make new ones).

  ``image`` (H, W, 3) in [-1, 1] is what the page shows. Generators keep their latent
  ``z`` (n = 1; None for a projected photo), the W+ ``ws`` it maps to (edits such as a drag
  change ``ws`` only), the ``noise_maps`` (1, R, R, 1) it is rendered with and, for
  SpatialGAN, ``heatmaps``; a projected photo also keeps the optimised ``latent`` of its
  projection ``space`` (:class:`~jaxspatial.edit.projection.Projection`; SSN: the block grid
  that resampling redraws) and its ``projection_steps`` until an edit changes ``ws`` (then
  ``latent`` is None: W+ itself). The regressor keeps its collage layers ``sources``
  ((H, W, 3) each) and ``masks`` ((H, W, 1) in {0, 1}, 1 = keep this pixel).
  """
  image: np.ndarray
  edit: str
  seed: int = 0
  truncation: float = 1.0
  noise: str = "const"
  z: np.ndarray | None = None
  ws: np.ndarray | None = None
  noise_maps: tuple[np.ndarray, ...] = ()
  heatmaps: Heatmaps | None = None
  latent: np.ndarray | None = None
  space: str = "wplus"
  projection_steps: int = 0
  sources: tuple[np.ndarray, ...] = ()
  masks: tuple[np.ndarray, ...] = ()

  def replace(self, **kw) -> "State":
    return dataclasses.replace(self, **kw)


class Engine:
  """A StyleGAN2 (the base of every generator engine): latents, projection and DragGAN (the
  last two when the model offers them: ``projection_spaces``, ``draggable``)."""

  edits: tuple[str, ...] = ("generate", "drag", "project")
  """What the page offers (its controls)."""
  ops: frozenset[str] = frozenset({"settings", "drag", "project"})
  """The requests beyond :data:`jaxspatial.studio.ops.EVERY_ENGINE` that this engine answers."""

  def __init__(self, name: str, model):
    self.name, self.model = name, model
    self.kind: str = model.kind
    self.resolution: int = model.resolution
    self._draggers: dict[bool, drag_lib.Dragger] = {}
    self._fixed_maps: dict[str, tuple[np.ndarray, ...]] = {}
    self.ops = self.ops_for(type(model))
    self.edits = tuple(e for e in self.edits if e not in ("drag", "project") or e in self.ops)
    self.losses = proj_lib.available_losses(model) if "project" in self.edits else ()

  @classmethod
  def ops_for(cls, model_class: type) -> frozenset[str]:
    """:attr:`ops` less what models of ``model_class`` cannot do (``draggable``,
    ``projection_spaces``: a family's model class may turn DragGAN or projection off)."""
    off = {"drag"} if not getattr(model_class, "draggable", False) else set()
    if not getattr(model_class, "projection_spaces", ()):
      off.add("project")
    return cls.ops - off

  def describe(self) -> dict[str, Any]:
    """What the page needs to build its controls for this model."""
    return {"name": self.name, "kind": self.kind, "resolution": self.resolution,
            "edits": list(self.edits), "num_ws": int(self.model.num_ws),
            "max_points": MAX_POINTS,
            **({"projection": {"losses": list(self.losses), "steps": PROJECT_STEPS,
                               "spaces": list(self.model.projection_spaces)}}
               if self.losses else {})}

  # ------------------------------------------------------------------ latents

  def new(self, seed: int, truncation: float = 1.0, noise: str = "const") -> State:
    """A fresh image from ``seed``: z, W (the same w in every layer), image."""
    return self.from_z(self._fresh(seed, truncation, noise), self.model.sample_z(seed, 1))

  def _fresh(self, seed: int, truncation: float, noise: str, **kw) -> State:
    return State(image=np.zeros(0), edit=f"seed {seed}", seed=seed, truncation=truncation,
                 noise=noise, noise_maps=self.noise_maps(noise, seed), **kw)

  def noise_maps(self, mode: str, seed: int) -> tuple[np.ndarray, ...]:
    """``model.noise_maps(mode, seed)``; the const and none maps are shared by every state."""
    if mode == "random":
      return tuple(self.model.noise_maps(mode, seed))
    if mode not in self._fixed_maps:
      self._fixed_maps[mode] = tuple(self.model.noise_maps(mode))
    return self._fixed_maps[mode]

  def shared_arrays(self) -> list[np.ndarray]:
    """The arrays that states share across sessions (the const and none noise maps): they
    exist once however many tabs are open, so the session store's budget leaves them out."""
    return [a for maps in self._fixed_maps.values() for a in maps]

  def from_z(self, state: State, z: np.ndarray) -> State:
    w = self._map(z, state)
    if state.truncation != 1.0:
      w = self.model.truncate(w, state.truncation)
    ws = np.repeat(w[:, None], self.model.num_ws, axis=1)
    return self.render(state.replace(z=z, ws=ws, latent=None, projection_steps=0))

  def _map(self, z: np.ndarray, state: State) -> np.ndarray:
    return self.model.mapping(z)

  def render(self, state: State) -> State:
    """``state`` with its image synthesised from its ``ws`` (and heatmaps)."""
    image = self.model.synthesize(state.ws, noise=list(state.noise_maps))[0]
    return state.replace(image=image)

  def settings(self, state: State, truncation: float, noise: str) -> State:
    """New truncation / noise mode: remaps ``z`` (edits of ``ws`` are dropped) when the
    truncation changes, re-renders when only the noise mode does (a projected photo's own
    maps are then replaced by the mode's)."""
    maps = state.noise_maps if noise == state.noise else self.noise_maps(noise, state.seed)
    changed = state.replace(truncation=truncation, noise=noise, noise_maps=maps,
                            edit=f"truncation {truncation:g}, noise {noise}")
    if truncation != state.truncation:
      if state.z is None:
        raise UserError("a projected photo has no z to truncate; generate an image first")
      return self.from_z(changed, state.z)
    return self.render(changed)

  # ------------------------------------------------------------------ photos

  def project(self, state: State, target: np.ndarray, *, steps: int, loss: str, space: str,
              **hooks) -> State:
    """``target`` (H, W, 3) projected into the model (``m.project``: ``steps`` Adam steps of
    ``loss`` in ``space``; ``hooks``: its callback / on_snapshot / stop) -> the state of the
    projected photo: its W+, noise maps, latent (SpatialGAN: heatmaps), no ``z``."""
    cfg = proj_lib.ProjectionConfig(steps=steps, space=space, loss=loss, seed=state.seed,
                                    snapshots=min(steps, PREVIEWS) + 1)
    p = self.model.project(target, config=cfg, **hooks)
    new = State(image=np.zeros(0), seed=state.seed, noise="projected", ws=p.ws,
                noise_maps=tuple(p.noise), heatmaps=p.heatmaps, latent=p.latent, space=p.space,
                projection_steps=p.steps,
                edit=f"projected photo ({p.steps} steps, {loss}, PSNR {p.psnr[0]:.1f} dB)")
    return self.render(new)

  def projection(self, state: State) -> proj_lib.Projection:
    """The state's latents as a :class:`~jaxspatial.edit.projection.Projection` (what
    ``python -m jaxspatial.project`` writes): a generated or edited image is its own W+."""
    latent, space = ((state.latent, state.space) if state.latent is not None
                     else (state.ws, "wplus"))
    return proj_lib.Projection(kind=self.kind, space=space, latent=latent, ws=state.ws,
                               noise=list(state.noise_maps), heatmaps=state.heatmaps,
                               steps=state.projection_steps)

  # ------------------------------------------------------------------ DragGAN

  def dragger(self, w_space: bool) -> drag_lib.Dragger:
    if w_space not in self._draggers:
      self._draggers[w_space] = drag_lib.Dragger(
          self.model, drag_lib.DragConfig(w_space=w_space), max_points=MAX_POINTS)
    return self._draggers[w_space]

  def drag(self, state: State, handles, targets, *, mask: np.ndarray | None = None,
           w_space: bool = False, coarse: bool = True, max_steps: int = 200,
           stop: Callable[[], bool] = lambda: False
           ) -> Iterator[tuple[drag_lib.DragStep, State | None]]:
    """Yields ``(step, None)`` per DragGAN iteration and finally ``(last step, new state)``;
    ends on arrival, after ``max_steps``, or as soon as ``stop()`` is true."""
    kw = self._drag_kw(state, coarse)
    run = self.dragger(w_space).start(state.ws, handles, targets, mask=mask,
                                      noise=list(state.noise_maps), **kw)
    info = None
    for _ in range(max_steps):
      info = run.step()
      if info.done or stop():
        break
      yield info, None
    result = run.result()
    new = state.replace(ws=result.ws, latent=None, edit=f"drag ({result.steps} steps)",
                        **({"heatmaps": result.heatmaps} if result.heatmaps is not None else {}))
    new = self.render(new)
    final = drag_lib.DragStep(result.steps, new.image, result.handles, result.converged)
    yield final, new

  def _drag_kw(self, state: State, coarse: bool) -> dict[str, Any]:
    return {}

  # ------------------------------------------------------------------ uploads

  def upload(self, state: State, image: np.ndarray, label: str) -> State | None:
    """An uploaded photo (H, W, 3): a new state, or None (here: it becomes the target of the
    next projection, kept by the session)."""
    return None

  # ------------------------------------------------------------------ export

  def export(self, state: State) -> dict[str, np.ndarray]:
    """The arrays of ``latent.npz``: :meth:`projection`'s (the format of
    ``python -m jaxspatial.project``, so ``drag`` / ``edit_heatmap`` / ``resample --latent``
    take it), plus the studio's ``seed``, ``truncation``, ``noise`` mode and ``z`` if any."""
    out = {**self.projection(state).arrays(), "seed": np.int64(state.seed),
           "truncation": np.float32(state.truncation), "noise": np.str_(state.noise)}
    if state.z is not None:
      out["z"] = np.asarray(state.z)
    return out

  def overlay(self, state: State) -> dict[str, Any]:
    """Model-specific drawing data for the page (heatmap centres, the block grid)."""
    return {}

  def warm_up(self) -> None:
    """Compiles every edit of this kind once (the first real edit is then as fast as later ones):
    here the latents, the projection (default loss, the first of its spaces) and the drags."""
    state = self.new(0)
    self.settings(state, 0.7, "random")
    if "project" in self.edits:
      self.project(state, state.image, steps=2, loss=self.losses[0],
                   space=self.model.projection_spaces[0])
    if "drag" in self.edits:
      r = self.resolution - 1
      for w_space in (False, True):
        for _ in self.drag(state, [[r // 2, r // 4]], [[r // 2, r // 2]], w_space=w_space,
                           max_steps=2):
          pass


class SpatialGANEngine(Engine):
  """SpatialGAN: heatmap centres to move, scale and remove, layouts, DragGAN with the
  coarse centre move (the paper's synergy)."""

  edits = ("generate", "drag", "heatmaps", "new_latent", "project")
  ops = Engine.ops | {"heatmap", "new_latent", "restyle"}

  def describe(self) -> dict[str, Any]:
    out = super().describe()
    if self.model.indoor:
      out["edits"] = [*self.edits, "restyle"]
    return out

  def new(self, seed, truncation=1.0, noise="const") -> State:
    h = self.model.sample_heatmaps(seed, 1)
    return self.from_z(self._fresh(seed, truncation, noise, heatmaps=h),
                       self.model.sample_z(seed, 1))

  def _map(self, z, state):
    return self.model.mapping(z, state.heatmaps)

  def render(self, state):
    image = self.model.synthesize(state.ws, state.heatmaps, noise=list(state.noise_maps))[0]
    return state.replace(image=image)

  def heatmap_edit(self, state: State, op: str, index: int, *, row: float = 0.0,
                   col: float = 0.0, factor: float = 1.0) -> State:
    """``move`` centre ``index`` (and its finer centres) to pixel ``(row, col)``, ``scale``
    its sigma by ``factor``, or ``remove`` it."""
    h = state.heatmaps
    if not 0 <= index < h.num_centers:
      raise UserError(f"centre {index} out of range 0..{h.num_centers - 1}")
    if op == "move":
      y, x = h.pixel_centers(self.resolution)[0, index]
      unit = 2.0 / (self.resolution - 1)
      h = h.move(index, (row - y) * unit, (col - x) * unit)
      edit = f"move centre {index}"
    elif op == "scale":
      if not 0.1 <= factor <= 10:
        raise UserError(f"scale factor must lie in [0.1, 10], got {factor}")
      h, edit = h.scale(index, factor), f"scale centre {index} x{factor:.2f}"
    elif op == "remove":
      h, edit = h.remove(index), f"remove centre {index}"
    else:
      raise UserError(f"unknown heatmap edit {op!r} (move, scale, remove)")
    return self.render(state.replace(heatmaps=h, edit=edit))

  def new_latent(self, state: State, seed: int) -> State:
    """Keeps the layout (heatmaps), draws a new latent."""
    return self.from_z(state.replace(seed=seed, edit=f"new latent {seed}, same layout"),
                       self.model.sample_z(seed, 1))

  def restyle(self, state: State, index: int, seed: int) -> State:
    """Indoor models: redraws object ``index``'s style code."""
    if state.z is None:
      raise UserError("a projected photo has no per-object style codes to redraw")
    z = self.model.restyle(state.z, index, seed)
    return self.from_z(state.replace(edit=f"restyle object {index}"), z)

  def _drag_kw(self, state, coarse):
    return {"heatmaps": state.heatmaps, "coarse": coarse, "optimise_centers": coarse}

  def overlay(self, state):
    h = state.heatmaps
    px = h.pixel_centers(self.resolution)[0]
    return {"centres": [
        {"index": i, "level": int(h.levels[i]), "parent": int(h.parents[i]),
         "row": float(px[i, 0]), "col": float(px[i, 1]), "sigma": float(h.sigmas[0, i]),
         "present": bool(h.amplitudes[0, i] > 0)} for i in range(h.num_centers)]}

  def warm_up(self):
    super().warm_up()
    state = self.new(0)
    self.heatmap_edit(state, "move", 0, row=1.0, col=1.0)
    if self.model.indoor:
      self.restyle(state, 0, 1)
    for _ in self.drag(state, [[1, 1]], [[1, 3]], coarse=False, max_steps=2):
      pass


class SSNEngine(Engine):
  """SSN: the latent block grid; resample the selected blocks into a strip of candidates."""

  edits = ("generate", "resample", "project")
  ops = frozenset({"settings", "resample", "pick", "project"})

  def describe(self):
    return {**super().describe(), "grid": list(self.model.grid), "candidates": CANDIDATES}

  def resample(self, state: State, blocks, seed: int) -> list[State]:
    """:data:`CANDIDATES` states with ``blocks`` redrawn from seeds ``seed, seed + 1, ...``:
    of ``z`` for a generated image, of the projected latent for a photo."""
    if not blocks:
      raise UserError("select at least one block to resample")
    seeds = range(seed, seed + CANDIDATES)
    if state.z is None:
      picks = [proj_lib.resampled_projection(self.model, self.projection(state), blocks, s)
               for s in seeds]
      changes = [{"ws": p.ws, "latent": p.latent if state.latent is not None else None}
                 for p in picks]
    else:
      import jaxspatial as js
      zs = np.concatenate([js.ssn.resample_blocks(state.z, blocks, s) for s in seeds])
      ws = self.model.mapping(zs)
      if state.truncation != 1.0:
        ws = self.model.truncate(ws, state.truncation)
      ws = np.repeat(ws[:, None], self.model.num_ws, axis=1)
      changes = [{"z": zs[k:k + 1], "ws": ws[k:k + 1]} for k in range(CANDIDATES)]
    images = self.model.synthesize(np.concatenate([c["ws"] for c in changes]),
                                   noise=list(state.noise_maps))
    label = f"resample blocks {' '.join(f'{r},{c}' for r, c in blocks)}"
    return [state.replace(image=images[k], edit=f"{label} (seed {s})", **changes[k])
            for k, s in enumerate(seeds)]

  def overlay(self, state):
    return {"grid": list(self.model.grid)}

  def warm_up(self):
    super().warm_up()
    state = self.new(0)
    self.resample(state, [(0, 0)], 1)
    self.resample(self.project(state, state.image, steps=1, loss=self.losses[0],
                               space=self.model.projection_spaces[0]), [(0, 0)], 1)


class RegressorEngine(Engine):
  """Latent regressor: collages of brushed parts, ``G(E(collage, mask))``, finetuning."""

  edits = ("sources", "composite", "finetune", "upload")
  ops = frozenset({"source", "remove_source", "composite", "finetune"})

  def new(self, seed, truncation=1.0, noise="const") -> State:
    """Two generated sources (seeds ``seed``, ``seed + 1``), nothing brushed yet."""
    sources = tuple(self.source(seed + k) for k in range(2))
    blank = np.zeros((self.resolution, self.resolution, 1), np.float32)
    return State(image=np.zeros_like(sources[0]), edit=f"sources {seed}, {seed + 1}",
                 seed=seed, truncation=truncation, noise=noise, sources=sources,
                 masks=(blank, blank))

  def source(self, seed: int) -> np.ndarray:
    return self.model.generate(self.model.sample_z(seed, 1))[0]

  def add_source(self, state: State, image: np.ndarray, label: str) -> State:
    if len(state.sources) >= MAX_SOURCES:
      raise UserError(f"at most {MAX_SOURCES} sources; remove one first")
    blank = np.zeros((self.resolution, self.resolution, 1), np.float32)
    return state.replace(sources=(*state.sources, image), masks=(*state.masks, blank),
                         edit=label)

  def upload(self, state, image, label):
    """An uploaded photo becomes a new collage source."""
    return self.add_source(state, image, label)

  def remove_source(self, state: State, index: int) -> State:
    if not 0 <= index < len(state.sources) or len(state.sources) == 1:
      raise UserError(f"cannot remove source {index} of {len(state.sources)}")
    keep = [k for k in range(len(state.sources)) if k != index]
    return state.replace(sources=tuple(state.sources[k] for k in keep),
                         masks=tuple(state.masks[k] for k in keep), edit=f"remove source {index}")

  def composite(self, state: State, masks: list[np.ndarray], model=None) -> State:
    """The masks brushed on each source -> ``G(E(collage, ∪ masks))`` (the paper's Eq. 4).
    With nothing brushed the image is the regressor's guess from an empty collage."""
    if len(masks) != len(state.sources):
      raise UserError(f"{len(masks)} masks for {len(state.sources)} sources")
    parts = [(x[None], m[None]) for x, m in zip(state.sources, masks)]
    image = (model or self.model).composite(parts)[0]
    return state.replace(image=image, masks=tuple(masks), edit="composite")

  def finetune(self, state: State, steps: int, callback: Callable[[int], bool]):
    """A copy of the regressor finetuned on the current collage (the paper's ~30 steps)."""
    collage, union = self.model.collage([(x[None], m[None])
                                         for x, m in zip(state.sources, state.masks)])
    # The library's default for a checkpoint without one (a converted encoder: LPIPS on, as
    # RegressorModel.finetune and --finetune-lpips); no LPIPS weights here: without it below.
    lpips = float(self.model.config.get("loss", {}).get("lpips_weight",
                                                        regression.LOSS_DEFAULTS["lpips_weight"]))
    try:
      return self.model.finetune(collage, union, steps=steps, lpips_weight=lpips,
                                 show_progress=False, callback=callback)
    except UserError as e:
      if lpips and "lpips" in str(e).lower():
        return self.model.finetune(collage, union, steps=steps, lpips_weight=0.0,
                                   show_progress=False, callback=callback)
      raise

  def export(self, state):
    collage, union = self.model.collage([(x[None], m[None])
                                         for x, m in zip(state.sources, state.masks)])
    code = self.model.invert(collage, union)    # W+, or a SpatialGAN's {"ws", heatmap arrays}
    return {**(code if isinstance(code, dict) else {"ws": code}), "collage": collage,
            "mask": union, "kind": np.str_(self.kind)}

  def warm_up(self):
    state = self.new(0)
    full = np.ones_like(state.masks[0])
    state = self.composite(state, [full, np.zeros_like(full)])
    self.finetune(state, 1, lambda i: False)


def engine_class(kind: str) -> type[Engine] | None:
  """The engine of ``kind`` (its family's ``studio``), None when the studio cannot open it."""
  ref = families.get(kind).studio
  return None if ref is None else families.resolve(ref)


def kinds_offering(op: str) -> list[str]:
  """The registered kinds whose engine answers request ``op`` (for error messages)."""
  return families.kinds_with(lambda f: f.studio is not None and op in families.resolve(
      f.studio).ops_for(families.resolve(f.model)))


def load_engine(path: str | pathlib.Path) -> Engine:
  """``js.load(path)`` wrapped in the engine of its kind, named after the directory."""
  import jaxspatial as js
  model = js.load(path)
  cls = engine_class(model.kind)
  if cls is None:
    raise UserError(f"{path}: the studio has no editor for {model.kind!r} models")
  return cls(pathlib.Path(path).name, model)
