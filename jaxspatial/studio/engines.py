"""What the studio can do with each kind of model: one engine per loaded checkpoint.

An engine turns a request into a new :class:`State` by calling the library's public API
(``js.load`` models, :mod:`jaxspatial.edit.drag`, ``Heatmaps`` edits, ``js.ssn.resample_blocks``,
``RegressorModel.composite`` / ``finetune``); it never holds per-tab data (that is the
:class:`~jaxspatial.studio.sessions.Session`'s). :meth:`Engine.warm_up` runs every edit once
on a throw-away state, so that each jitted function is compiled before the page says ready.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable, Iterator

import numpy as np

from jaxspatial.cli import UserError
from jaxspatial.edit import drag as drag_lib
from jaxspatial.models.heatmaps import Heatmaps

MAX_POINTS = 8          # DragGAN handle/target pairs per drag (one compiled step for all)
CANDIDATES = 6          # SSN resampling candidates per request
MAX_SOURCES = 4         # regressor collage layers


@dataclasses.dataclass(frozen=True)
class State:
  """One entry of a session's history (immutable; edits make new ones).

  ``image`` (H, W, 3) in [-1, 1] is what the page shows. Generators keep their latent
  ``z`` (n = 1), the W+ ``ws`` it maps to (edits such as a drag change ``ws`` only) and,
  for SpatialGAN, ``heatmaps``; the regressor keeps its collage layers ``sources``
  ((H, W, 3) each) and ``masks`` ((H, W, 1) in {0, 1}, 1 = keep this pixel).
  """
  image: np.ndarray
  edit: str
  seed: int = 0
  truncation: float = 1.0
  noise: str = "const"
  z: np.ndarray | None = None
  ws: np.ndarray | None = None
  heatmaps: Heatmaps | None = None
  sources: tuple[np.ndarray, ...] = ()
  masks: tuple[np.ndarray, ...] = ()

  def replace(self, **kw) -> "State":
    return dataclasses.replace(self, **kw)


class Engine:
  """A StyleGAN2 (the base of every generator engine): latents and DragGAN."""

  edits: tuple[str, ...] = ("generate", "drag")

  def __init__(self, name: str, model):
    self.name, self.model = name, model
    self.kind: str = model.kind
    self.resolution: int = model.resolution
    self._draggers: dict[bool, drag_lib.Dragger] = {}

  def describe(self) -> dict[str, Any]:
    """What the page needs to build its controls for this model."""
    return {"name": self.name, "kind": self.kind, "resolution": self.resolution,
            "edits": list(self.edits), "num_ws": int(self.model.num_ws),
            "max_points": MAX_POINTS}

  # ------------------------------------------------------------------ latents

  def new(self, seed: int, truncation: float = 1.0, noise: str = "const") -> State:
    """A fresh image from ``seed``: z, W (the same w in every layer), image."""
    z = self.model.sample_z(seed, 1)
    return self.from_z(State(image=np.zeros(0), edit=f"seed {seed}", seed=seed,
                             truncation=truncation, noise=noise), z)

  def from_z(self, state: State, z: np.ndarray) -> State:
    w = self._map(z, state)
    if state.truncation != 1.0:
      w = self.model.truncate(w, state.truncation)
    ws = np.repeat(w[:, None], self.model.num_ws, axis=1)
    return self.render(state.replace(z=z, ws=ws))

  def _map(self, z: np.ndarray, state: State) -> np.ndarray:
    return self.model.mapping(z)

  def render(self, state: State) -> State:
    """``state`` with its image synthesised from its ``ws`` (and heatmaps)."""
    image = self.model.synthesize(state.ws, noise=state.noise, seed=state.seed)[0]
    return state.replace(image=image)

  def settings(self, state: State, truncation: float, noise: str) -> State:
    """New truncation / noise mode: remaps ``z`` (edits of ``ws`` are dropped) when the
    truncation changes, re-renders when only the noise mode does."""
    changed = state.replace(truncation=truncation, noise=noise,
                            edit=f"truncation {truncation:g}, noise {noise}")
    if truncation != state.truncation:
      return self.from_z(changed, state.z)
    return self.render(changed)

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
    run = self.dragger(w_space).start(state.ws, handles, targets, mask=mask, **kw)
    info = None
    for _ in range(max_steps):
      info = run.step()
      if info.done or stop():
        break
      yield info, None
    result = run.result()
    new = state.replace(ws=result.ws, edit=f"drag ({result.steps} steps)",
                        **({"heatmaps": result.heatmaps} if result.heatmaps is not None else {}))
    new = self.render(new)
    final = drag_lib.DragStep(result.steps, new.image, result.handles, result.converged)
    yield final, new

  def _drag_kw(self, state: State, coarse: bool) -> dict[str, Any]:
    return {}

  # ------------------------------------------------------------------ export

  def export(self, state: State) -> dict[str, np.ndarray]:
    """The arrays of ``latent.npz``: ``ws`` (W+ of the image) and its ``z`` and settings."""
    out = {"ws": np.asarray(state.ws), "z": np.asarray(state.z), "seed": np.int64(state.seed),
           "truncation": np.float32(state.truncation), "noise": np.str_(state.noise),
           "kind": np.str_(self.kind)}
    if state.heatmaps is not None:
      h = state.heatmaps
      out.update(heatmap_centers=h.centers, heatmap_sigmas=h.sigmas,
                 heatmap_amplitudes=h.amplitudes)
    return out

  def overlay(self, state: State) -> dict[str, Any]:
    """Model-specific drawing data for the page (heatmap centres, the block grid)."""
    return {}

  def warm_up(self) -> None:
    """Compiles every edit of this kind once (the first real edit is then as fast as later ones)."""
    state = self.new(0)
    self.settings(state, 0.7, "random")
    if "drag" in self.edits:
      r = self.resolution - 1
      for w_space in (False, True):
        for _ in self.drag(state, [[r // 2, r // 4]], [[r // 2, r // 2]], w_space=w_space,
                           max_steps=2):
          pass


class SpatialGANEngine(Engine):
  """SpatialGAN: heatmap centres to move, scale and remove, layouts, DragGAN with the
  coarse centre move (the paper's synergy)."""

  edits = ("generate", "drag", "heatmaps", "new_latent")

  def describe(self) -> dict[str, Any]:
    out = super().describe()
    if self.model.indoor:
      out["edits"] = [*self.edits, "restyle"]
    return out

  def new(self, seed, truncation=1.0, noise="const") -> State:
    h = self.model.sample_heatmaps(seed, 1)
    z = self.model.sample_z(seed, 1)
    return self.from_z(State(image=np.zeros(0), edit=f"seed {seed}", seed=seed,
                             truncation=truncation, noise=noise, heatmaps=h), z)

  def _map(self, z, state):
    return self.model.mapping(z, state.heatmaps)

  def render(self, state):
    image = self.model.synthesize(state.ws, state.heatmaps, noise=state.noise,
                                  seed=state.seed)[0]
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

  edits = ("generate", "resample")

  def describe(self):
    return {**super().describe(), "grid": list(self.model.grid), "candidates": CANDIDATES}

  def resample(self, state: State, blocks, seed: int) -> list[State]:
    """:data:`CANDIDATES` states with ``blocks`` redrawn from seeds ``seed, seed + 1, ...``."""
    import jaxspatial as js
    if not blocks:
      raise UserError("select at least one block to resample")
    zs = np.concatenate([js.ssn.resample_blocks(state.z, blocks, seed + k)
                         for k in range(CANDIDATES)])
    ws = self.model.mapping(zs)
    if state.truncation != 1.0:
      ws = self.model.truncate(ws, state.truncation)
    ws = np.repeat(ws[:, None], self.model.num_ws, axis=1)
    images = self.model.synthesize(ws, noise=state.noise, seed=state.seed)
    label = f"resample blocks {' '.join(f'{r},{c}' for r, c in blocks)}"
    return [state.replace(z=zs[k:k + 1], ws=ws[k:k + 1], image=images[k],
                          edit=f"{label} (seed {seed + k})") for k in range(CANDIDATES)]

  def overlay(self, state):
    return {"grid": list(self.model.grid)}

  def warm_up(self):
    super().warm_up()
    self.resample(self.new(0), [(0, 0)], 1)


class RegressorEngine(Engine):
  """Latent regressor: collages of brushed parts, ``G(E(collage, mask))``, finetuning."""

  edits = ("sources", "composite", "finetune", "upload")

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
    lpips = float(self.model.config.get("loss", {}).get("lpips_weight", 0.0))
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
    return {"ws": self.model.invert(collage, union), "collage": collage, "mask": union,
            "kind": np.str_(self.kind)}

  def warm_up(self):
    state = self.new(0)
    full = np.ones_like(state.masks[0])
    state = self.composite(state, [full, np.zeros_like(full)])
    self.finetune(state, 1, lambda i: False)


ENGINES: dict[str, type[Engine]] = {"stylegan2": Engine, "spatialgan": SpatialGANEngine,
                                    "ssn": SSNEngine, "regressor": RegressorEngine}


def load_engine(path: str | pathlib.Path) -> Engine:
  """``js.load(path)`` wrapped in the engine of its kind, named after the directory."""
  import jaxspatial as js
  model = js.load(path)
  if model.kind not in ENGINES:
    raise UserError(f"{path}: the studio has no editor for {model.kind!r} models")
  return ENGINES[model.kind](pathlib.Path(path).name, model)
