"""``js.load(regressor_dir)``: a masked latent regressor bundled with its frozen generator.

Chai, Wulff & Isola (ICLR 2021): E(x ⊙ m, m) -> W+ and the generator G form a real-time image
prior. Operations (numpy in/out; images (n, H, W, 3) float32 in [-1, 1], masks (n, H, W, 1)
in {0, 1} with 1 = known pixel)::

    r = js.load("runs/regressor")
    ws = r.invert(x, mask)                     # E(x ⊙ m, m): (n, num_ws, w_dim)
    y = r.inpaint(x, mask)                     # G(E(x ⊙ m, m))
    y = r.composite([(x1, m1), (x2, m2)])      # paste in order, G(E(collage, ∪ m))  (Eq. 4)
    y = r.edit(x1, x1_mod, x2)                 # G(E(x1_mod) − E(x1) + E(x2))
    r2 = r.finetune(x, mask, steps=30)         # E adapted to one image (Adam 5e-5, fresh masks)
    v = r.variation_map(parts, index, replacements)   # per-pixel variance when one part varies

The generator is a StyleGAN2, an SSN or a SpatialGAN; its family's regression target
(:mod:`jaxspatial.losses.regressor`) says what E predicts, the *code* that ``invert`` returns
and ``synthesize`` renders: W+ (n, num_ws, w_dim) for StyleGAN2, the block-style grid
(n, num_ws, gh, gw, w_dim) for an SSN, and for a SpatialGAN a dict ``{"ws", "centers"
(n, K, 2), "log_sigmas" (n, K)}`` (W+ and the heatmap; :meth:`RegressorModel.heatmaps`). Every
operation above works on every family (``edit`` does its arithmetic on each part of the code).

The checkpoint's ``models`` item is ``{"e": {"params", "batch_stats"}, "g_ema": {"params",
"buffers"}}`` and ``config.model.generator`` is the generator's own ``model`` section, so the
directory alone is ready. ``r.generator`` is that generator as its family's
:class:`~jaxspatial.api.model.GeneratorModel` (``sample_z``/``generate``/... are forwarded).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
import optax

from jaxspatial import cli, families
from jaxspatial.api.model import NOISE_MODES, Model, check_noise
from jaxspatial.data import collages
from jaxspatial.errors import UserError
from jaxspatial.losses import regressor as regression
from jaxspatial.models import regressor as regressor_lib

FINETUNE_STEPS = 30
FINETUNE_LR = 5e-5
FINETUNE_BETAS = (0.5, 0.999)


@dataclasses.dataclass
class VariationMap:
  """Independence of one part (paper Sec. 4.4): composites with part ``index`` replaced.

  ``variance`` (H, W) is the per-pixel variance across the N composites (mean over RGB);
  ``changed`` (H, W) the union of the replacement masks m_c; ``leakage`` the paper's
  ``s_c = mean_pixels[(1 − m_c) ⊙ v_c]`` (lower = the part varies more independently).
  """
  composites: np.ndarray
  variance: np.ndarray
  changed: np.ndarray
  leakage: float


def _of_generator(name: str) -> property:
  """A read-only property of :class:`RegressorModel`: its frozen generator's ``name``."""
  return property(lambda self: getattr(self.generator, name),
                  doc=f"The frozen generator's ``{name}``.")


class RegressorModel(Model):
  """A trained regressor E with its frozen generator G (see the module docstring)."""

  def __init__(self, config: ml_collections.ConfigDict, variables: dict, **kw):
    super().__init__(config, variables, **kw)
    g_cfg = config.model.get("generator")
    if not isinstance(g_cfg, ml_collections.ConfigDict) or "kind" not in g_cfg:
      raise UserError("regressor checkpoint config has no model.generator section (the "
                      "generator's model config); it was not written by this version")
    self.target = regression.regression_target(g_cfg)
    if "e" not in variables:
      raise UserError("regressor checkpoint holds no regressor ('e')")
    if "g_ema" not in variables:
      raise UserError("regressor checkpoint holds no generator ('g_ema'); save it with the "
                      "frozen generator's variables bundled")
    self.noise: str = config.model.get("noise_mode", regressor_lib.REGRESSOR_DEFAULTS["noise_mode"])
    if self.noise not in NOISE_MODES:
      raise UserError(f"model.noise_mode must be one of {'|'.join(NOISE_MODES)}, got "
                      f"{self.noise!r}")
    self.e_vars = variables["e"]
    model_cls = families.resolve(families.get(g_cfg.kind).model)
    self.generator = model_cls(ml_collections.ConfigDict({"model": g_cfg}),
                               {"g_ema": variables["g_ema"]}, precision=self.precision)
    self.regressor = regressor_lib.build_regressor(config.model)
    self._g_module = self.generator.generator     # the Flax module, built once (above)
    self._finetune_steps: dict[tuple, Any] = {}
    e, g, target = self.regressor, self._g_module, self.target

    def encode(e_vars, x, m):
      return e.apply(e_vars, x, m, train=False)

    def decode(g_vars, code, noise_mode, key):
      return target.synthesize(g, g_vars, code, noise_mode, {"noise": key})

    def reconstruct(e_vars, g_vars, x, m, key):
      return decode(g_vars, encode(e_vars, x, m), self.noise, key)

    self._encode = self.jit(encode)
    self._decode = self.jit(decode, static_argnums=2)
    self._reconstruct = self.jit(reconstruct)

  # ------------------------------------------------------------------ properties

  g_vars = _of_generator("g_vars")
  resolution = _of_generator("resolution")
  num_ws = _of_generator("num_ws")
  w_dim = _of_generator("w_dim")
  z_dim = _of_generator("z_dim")

  # ------------------------------------------------------------------ the generator

  def sample_z(self, seed: int, n: int = 1) -> np.ndarray:
    return self.generator.sample_z(seed, n)

  def mapping(self, z: np.ndarray) -> np.ndarray:
    return self.generator.mapping(z)

  def synthesize(self, code: Any, noise: str | None = None, seed: int = 0) -> np.ndarray:
    """G of a code (:meth:`invert`'s output: W+, or the family's code) -> images
    (n, H, W, 3); ``noise`` const|random|none (default the checkpoint's ``noise_mode``)."""
    noise = noise or self.noise
    check_noise(noise)
    code = self.check_code(code)
    key = jax.random.key(seed)
    return self._chunked(lambda i, s: self._decode(
        self.g_vars, jax.tree.map(lambda a: a[s], code), noise, jax.random.fold_in(key, i)),
        len(regression.latent(code)))

  def heatmaps(self, code: Any):
    """A SpatialGAN regressor's code -> the :class:`~jaxspatial.models.heatmaps.Heatmaps` it
    renders with (numpy); UserError for a family without heatmaps."""
    if not hasattr(self.target, "heatmaps"):
      raise UserError(f"a {self.generator.kind} regressor predicts no heatmaps")
    return self.target.heatmaps(self._g_module, self.check_code(code)).numpy()

  def check_code(self, code: Any, name: str = "code") -> Any:
    """``code`` as float32 numpy with this regressor's structure and per-sample shapes
    (:meth:`invert`'s); UserError otherwise."""
    res = self.resolution
    want = self.cached("regressor.code_shapes", lambda: jax.eval_shape(
        self.regressor.apply, self.e_vars, jax.ShapeDtypeStruct((1, res, res, 3), np.float32),
        jax.ShapeDtypeStruct((1, res, res, 1), np.float32)))
    got = jax.tree.map(lambda a: np.asarray(a, np.float32), code)
    shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape[1:]), tree)  # noqa: E731
    n = {a.shape[0] if a.ndim else -1 for a in jax.tree.leaves(got)}
    if jax.tree.structure(got) != jax.tree.structure(want) or shapes(got) != shapes(want) \
        or len(n) != 1:
      raise UserError(f"{name} has shapes {jax.tree.map(np.shape, got)}; this regressor's code "
                      f"is {jax.tree.map(lambda a: ('n', *a.shape[1:]), want)}")
    return got

  def generate(self, z: np.ndarray, truncation: float = 1.0, noise: str | None = None,
               seed: int = 0, **controls: Any) -> np.ndarray:
    return self.generator.generate(z, truncation, noise or self.noise, seed, **controls)

  # ------------------------------------------------------------------ regression

  def invert(self, x: np.ndarray, mask: np.ndarray | None = None) -> Any:
    """E(x ⊙ m, m): images (n, H, W, 3), mask (n, H, W, 1) or None (all known) -> the code:
    W+ (n, num_ws, w_dim) for StyleGAN2 (others: the module docstring). Any H × W: E
    area-resizes its input to ``model.input_size`` first (the official encoders take any size
    and resize to 256)."""
    x = self._images(x, "x", any_size=True)
    mask = self._masks(mask, x, "mask")
    return self._chunked(lambda i, s: self._encode(self.e_vars, x[s], mask[s]), len(x))

  def inpaint(self, x: np.ndarray, mask: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """G(E(x ⊙ m, m)): one forward pass of E and G; the unknown pixels are the generator's
    completion. x (n, H, W, 3), mask (n, H, W, 1) -> (n, H, W, 3). ``seed`` only matters for
    ``noise_mode="random"``."""
    x = self._images(x, "x")
    mask = self._masks(mask, x, "mask")
    key = jax.random.key(seed)
    return self._chunked(lambda i, s: self._reconstruct(
        self.e_vars, self.g_vars, x[s], mask[s], jax.random.fold_in(key, i)), len(x))

  def composite(self, parts: Sequence[tuple[np.ndarray, np.ndarray]], seed: int = 0) -> np.ndarray:
    """Pastes ``parts`` = [(images (n, H, W, 3), masks (n, H, W, 1)), ...] in order (later over
    earlier) and returns ``G(E(collage, ∪ masks))`` (n, H, W, 3) (paper Eq. 4)."""
    collage, union = self.collage(parts)
    return self.inpaint(collage, union, seed=seed)

  def collage(self, parts: Sequence[tuple[np.ndarray, np.ndarray]]
              ) -> tuple[np.ndarray, np.ndarray]:
    """The regressor's input for ``parts``: (collage (n, H, W, 3), union mask (n, H, W, 1))."""
    if not parts:
      raise UserError("composite needs at least one (images, masks) part")
    checked = []
    for k, (images, masks) in enumerate(parts):
      images = self._images(images, f"part {k} images")
      checked.append((images, self._masks(masks, images, f"part {k} masks")))
    n = {len(images) for images, _ in checked}
    if len(n) > 1:
      raise UserError(f"all parts need the same number of images, got {sorted(n)}")
    return collages.paste_layers(checked)

  def edit(self, x1: np.ndarray, x1_mod: np.ndarray, x2: np.ndarray, seed: int = 0) -> np.ndarray:
    """One-shot attribute edit ``G(E(x1_mod) − E(x1) + E(x2))``: the change from x1 to x1_mod
    applied to x2. x1 and x1_mod: (1 or n, H, W, 3); x2: (n, H, W, 3) -> (n, H, W, 3)."""
    x1, x1_mod, x2 = (self._images(a, name) for a, name in
                      ((x1, "x1"), (x1_mod, "x1_mod"), (x2, "x2")))
    if len(x1) != len(x1_mod) or len(x1) not in (1, len(x2)):
      raise UserError(f"x1 ({len(x1)}) and x1_mod ({len(x1_mod)}) need the same number of "
                      f"images, 1 or as many as x2 ({len(x2)})")
    code = jax.tree.map(lambda a, b, c: a - b + c, self.invert(x1_mod), self.invert(x1),
                        self.invert(x2))
    return self.synthesize(code, seed=seed)

  # ------------------------------------------------------------------ finetuning

  def finetune(self, x: np.ndarray, mask: np.ndarray | None = None, steps: int = FINETUNE_STEPS,
               lr: float = FINETUNE_LR, seed: int = 0,
               lpips_weight: float = regression.LOSS_DEFAULTS["lpips_weight"],
               show_progress: bool = True,
               callback: Callable[[int], bool | None] | None = None) -> "RegressorModel":
    """A copy whose regressor is finetuned on ``x`` (the paper's per-image finetuning).

    ``steps`` Adam steps (lr, betas (0.5, 0.999)) on :func:`jaxspatial.losses.regressor.finetune_loss_fn`:
    fresh random masks each step, E with its running BN statistics, masked MSE + masked LPIPS
    on the known pixels. Pass one image (n = 1) for per-image finetuning; n > 1 adapts E to all
    of them jointly. ``lpips_weight=0`` needs no LPIPS weights; otherwise a missing
    ``lpips-vgg`` file is a :class:`UserError` saying how to convert it. ``callback(i)`` is
    called after step ``i`` (0-based); a true return value stops the finetuning there.
    """
    x = self._images(x, "x")
    mask = self._masks(mask, x, "mask")
    if steps < 0:
      raise UserError(f"finetune steps must be >= 0, got {steps}")
    if not lr > 0:
      raise UserError(f"finetune lr must be positive, got {lr}")
    if not mask.reshape(len(mask), -1).any(axis=1).all():
      raise UserError("finetune needs at least one known pixel (mask = 1) in every image")
    loss_cfg = ml_collections.ConfigDict(
        self.config.loss.to_dict() if "loss" in self.config else {})
    loss_cfg.lpips_weight = float(lpips_weight)
    lpips_params = regression.load_lpips_params(
        loss_cfg, hint="finetune without LPIPS: lpips_weight=0 / --finetune-lpips 0")
    step_fn, optimizer = self._finetune_step(loss_cfg, float(lr))
    params, e_state = self.e_vars["params"], self.e_vars["batch_stats"]
    opt_state = optimizer.init(params)
    key = jax.random.key(seed)
    for i in cli.progress(range(steps), desc="finetune", unit="step", enabled=show_progress):
      params, opt_state, _ = step_fn(params, opt_state, e_state, self.g_vars, lpips_params,
                                     jax.random.fold_in(key, i), x, mask)
      if callback is not None and callback(i):
        break
    tuned = copy.copy(self)
    tuned.e_vars = {**self.e_vars, "params": params}
    tuned.variables = {**self.variables, "e": tuned.e_vars}
    return tuned

  def _finetune_step(self, loss_cfg: ml_collections.ConfigDict, lr: float):
    """(jitted Adam step on E's params, its optimiser), cached per loss config and lr."""
    cache_key = (lr, loss_cfg.to_json())
    if cache_key in self._finetune_steps:
      return self._finetune_steps[cache_key]
    cfg = ml_collections.ConfigDict({"model": self.config.model.to_dict(),
                                     "loss": loss_cfg.to_dict()})
    optimizer = optax.adam(lr, *FINETUNE_BETAS)
    g_module, noise, target = self._g_module, self.noise, self.target
    lpips_net = loss_cfg.get("lpips_net", regression.LOSS_DEFAULTS["lpips_net"])
    lpips_res = int(loss_cfg.get("lpips_resolution", regression.LOSS_DEFAULTS["lpips_resolution"]))

    def step(params, opt_state, e_state, g_vars, lpips_params, key, x, mask):
      g_apply = regression.generator_fns(g_module, g_vars, noise, key, target)
      lpips_fn = (None if lpips_params is None
                  else regression.make_lpips_fn(lpips_params, lpips_net, lpips_res))
      (_, metrics), grads = jax.value_and_grad(regression.finetune_loss_fn, has_aux=True)(
          params, e_state, g_apply, key, x, mask, cfg, lpips_fn)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, metrics

    self._finetune_steps[cache_key] = (self.jit(step), optimizer)
    return self._finetune_steps[cache_key]

  # ------------------------------------------------------------------ independence

  def variation_map(self, parts: Sequence[tuple[np.ndarray, np.ndarray]], index: int,
                    replacements: tuple[np.ndarray, np.ndarray], seed: int = 0) -> VariationMap:
    """Replaces layer ``index`` of a single collage by each of N ``replacements`` and measures
    how the composites vary (paper Sec. 4.4, Fig. 8).

    Args:
      parts: the base collage's layers, each (images (1, H, W, 3), masks (1, H, W, 1)).
      index: which layer to replace.
      replacements: (images (N, H, W, 3), masks (N, H, W, 1)), N >= 2.
    """
    if not -len(parts) <= index < len(parts):
      raise UserError(f"part index {index} out of range for {len(parts)} parts")
    images, masks = replacements
    images = self._images(images, "replacement images")
    masks = self._masks(masks, images, "replacement masks")
    n = len(images)
    if n < 2:
      raise UserError(f"a variation map needs at least 2 replacements, got {n}")
    tiled = []
    for k, (x, m) in enumerate(parts):
      x = self._images(x, f"part {k} images")
      m = self._masks(m, x, f"part {k} masks")
      if len(x) != 1:
        raise UserError(f"variation_map takes one base collage; part {k} has {len(x)} images")
      tiled.append((np.repeat(x, n, 0), np.repeat(m, n, 0)))
    tiled[index] = (images, masks)
    composites = self.composite(tiled, seed=seed)
    variance = composites.var(axis=0).mean(axis=-1)
    changed = masks.max(axis=0)[..., 0]
    return VariationMap(composites, variance, changed, float(np.mean((1.0 - changed) * variance)))

  # ------------------------------------------------------------------ checks

  def _images(self, x: Any, name: str, any_size: bool = False) -> np.ndarray:
    x = np.asarray(x, np.float32)
    r = self.resolution
    if any_size and x.ndim == 4 and x.shape[-1] == 3 and x.size:
      return x
    if x.ndim != 4 or x.shape[1:] != (r, r, 3) or not len(x):
      raise UserError(f"{name} has shape {x.shape}; expected (n, {r}, {r}, 3) images for this "
                      f"{r} px generator")
    return x

  def _masks(self, mask: Any, x: np.ndarray, name: str) -> np.ndarray:
    if mask is None:
      return np.ones(x.shape[:3] + (1,), np.float32)
    mask = np.asarray(mask, np.float32)
    want = x.shape[:3] + (1,)
    if mask.shape != want:
      raise UserError(f"{name} has shape {mask.shape} but its images are {x.shape}; expected "
                      f"{want}")
    if not np.isin(mask, (0.0, 1.0)).all():
      raise UserError(f"{name} is not binary: masks must hold only 0 (unknown) and 1 (known)")
    return mask


def regressor_config(path: str, step: int | None = None) -> ml_collections.ConfigDict:
  """The config of a regressor checkpoint (cheap: no arrays are read); one-line
  :class:`UserError` for a missing directory or another kind of model."""
  from jaxspatial import checkpoint
  return checkpoint.read_config(
      path, step, kind="regressor",
      hint=" (python -m jaxspatial.train --config configs/regressor.py ...)")


def load_regressor(path: str, step: int | None = None) -> RegressorModel:
  """``js.load`` that insists on a regressor checkpoint."""
  from jaxspatial.api.model import load
  regressor_config(path, step)
  return load(path, step)
