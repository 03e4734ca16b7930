"""Latent regression (Chai, Wulff & Isola, ICLR 2021): the pure pieces a jitted step calls.

The regressor E is trained against a *frozen* generator G on generated images only (paper
Eq. 3, with the official code's choices)::

    z ~ N(0, I),  x = G(z) with w = mapping(z),  m ~ masks,  ŵ = E(x ⊙ m, m)  (W+)
    L = λ_mse ||G(ŵ) - x||² + λ_lpips LPIPS(G(ŵ), x) + λ_latent ||ŵ - [w]*num_ws||²

with means over elements, all λ = 1, Adam(1e-4, betas (0.5, 0.999)). Masks are 6×6 uniform
noise upsampled bilinearly, keeping pixels where the noise is below a threshold t ~ U[0.3, 1)
drawn once per batch.

**Families** (the paper inverts StyleGAN2 and ProGAN; the family record's ``regression`` names
one :class:`RegressionTarget` per kind, :func:`regression_target`). What E predicts is the
part of G's input that the image depends on and that G's own samples know exactly, so that
Eq. 3 keeps its three terms:

* StyleGAN2 (:data:`WPLUS_TARGET`): W+ ``(n, num_ws, w_dim)``, as the paper.
* SSN (:data:`BLOCK_GRID_TARGET`): its W+ is a grid of block styles per layer
  ``(n, num_ws, gh, gw, w_dim)`` (``z`` is a grid of i.i.d. blocks, mapped per block and
  through the block encoder). E's head keeps space (``models.regressor``: pooled to the block
  grid, not globally), so block ``(r, c)`` is read from its own part of the image, and the
  latent term is Eq. 3's on that tensor (``w`` the mapped grid, repeated per layer).
* SpatialGAN (:data:`HEATMAP_TARGET`): the image depends on W+ *and* the heatmaps, whose free
  parameters are the centres ``c`` (K, 2) and sigmas ``σ`` (K) (amplitudes are 1 in every
  sample). Inverting W+ alone would leave G to render with some other heatmap than the
  image's, and the objects elsewhere; optimising the heatmap per image would give up the
  single forward pass that is the regressor's point. So E predicts both, W+ (or an indoor
  model's per-object codes) and ``(ĉ, log σ̂)`` from its global head, G renders the predicted
  heatmap (differentiably: the Gaussians are smooth in ``c`` and ``σ``, so the image terms
  train the centres too), and G's samples give the true ``(c, σ)`` for a coordinate term
  (:func:`heatmap_losses`; ``log σ`` because the sigmas span an order of magnitude,
  0.05-1). Centres are regressed directly (in [-1, 1] heatmap units): at the demos' 32 px the
  ResNet's last map is 1×1 anyway, and zero padding lets its features encode position.

The training system wraps :func:`regressor_loss_fn` in its sharded step (``g_vars`` and
``lpips_params = load_lpips_params(cfg.loss)`` are step arguments, so they are traced, not
embedded as constants)::

    def step(e_params, e_state, g_vars, lpips_params, key):          # jitted
      g_apply = generator_fns(generator, g_vars, cfg.model.noise_mode, key,
                              regression_target(cfg.model.generator))
      lpips_fn = (None if lpips_params is None else
                  make_lpips_fn(lpips_params, cfg.loss.lpips_net, cfg.loss.lpips_resolution))
      grad_fn = jax.value_and_grad(regressor_loss_fn, has_aux=True)
      (loss, (metrics, e_state)), grads = grad_fn(e_params, e_state, g_apply, key, cfg,
                                                  lpips_fn, constrain)
      ... optax update of e_params only; e_state (batch_stats) replaced by the returned one.

The regressor's BatchNorm statistics are global under a batch-sharded jit (see
:mod:`jaxspatial.models.regressor`). Per-image finetuning (:func:`finetune_loss_fn`) runs E
with its running statistics, as the official notebook does (``netE.eval()``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from jaxspatial import families
from jaxspatial.errors import UserError
from jaxspatial.models import heatmaps as hm
from jaxspatial.models import regressor as regressor_lib

Array = jax.Array
LpipsFn = Callable[..., Array]
"""``lpips_fn(x, y, mask=None) -> (n,)``: LPIPS of images in [-1, 1]; with a mask
(n, H, W, 1) the spatial LPIPS map averaged over the mask (``Σ map·m / Σ m``)."""

MASK_T_RANGE = (0.3, 1.0)
MASK_GRID = 6
LOSS_DEFAULTS = dict(mse_weight=1.0, lpips_weight=1.0, latent_weight=1.0, lpips_net="vgg",
                     lpips_resolution=0, center_weight=1.0, sigma_weight=1.0)
"""The one default of each ``loss.<key>`` a config may lack (a converted latent-composition
checkpoint has no ``loss`` section): Eq. 3's terms, the per-image finetuning's LPIPS included,
each of weight 1 as in the official code (docs/regressor.md), LPIPS(VGG) at the generator's
resolution (0); a SpatialGAN's heatmap terms (:func:`heatmap_losses`) of weight 1 like Eq. 3's
latent term. ``configs/regressor.py`` writes its presets' values out."""


# --------------------------------------------------------------------------- masks


def upsampled_noise(key: Array, n: int, size: int, grid: int = MASK_GRID) -> Array:
  """(n, size, size, 1): ``grid × grid`` U[0, 1) noise, bilinearly upsampled with half-pixel
  centres and clamped borders (torch ``interpolate(mode='bilinear', align_corners=False)``)."""
  u = jax.random.uniform(key, (n, grid, grid, 1), jnp.float32)
  return jax.image.resize(u, (n, size, size, 1), "linear", antialias=False)


def sample_masks(key: Array, n: int, size: int, t_range: tuple[float, float] = MASK_T_RANGE,
                 grid: int = MASK_GRID) -> Array:
  """Random binary masks (n, size, size, 1) in {0, 1} (1 = known pixel), the official
  ``mask_upsample``: ``m = [up(u) < t]`` with u the 6×6 noise of :func:`upsampled_noise` and
  one threshold ``t ~ U[t_range)`` for the whole batch.

  The expected coverage given t is ``P(up(u) < t)``: 0.5 at t = 0.5 and 1 at t = 1; since
  interpolated noise concentrates around 0.5, coverage < t below 0.5 and > t above it.
  ``t_range=(t, t)`` fixes the threshold.
  """
  k_u, k_t = jax.random.split(key)
  lo, hi = t_range
  t = jax.random.uniform(k_t, (), jnp.float32, lo, hi) if hi > lo else jnp.float32(lo)
  return (upsampled_noise(k_u, n, size, grid) < t).astype(jnp.float32)


# --------------------------------------------------------------------------- losses


def masked_mse(rec: Array, target: Array, mask: Array) -> Array:
  """Per-image ``Σ (rec − target)² · m / Σ m`` (n,), mask broadcast over channels."""
  m = jnp.broadcast_to(mask, rec.shape)
  return jnp.sum(jnp.square(rec - target) * m, axis=(1, 2, 3)) / jnp.sum(m, axis=(1, 2, 3))


def regression_losses(target: Array, rec: Array, w: Array, ws: Array, *,
                      lpips_fn: LpipsFn | None = None, mse_weight: float = 1.0,
                      lpips_weight: float = 1.0, latent_weight: float = 1.0
                      ) -> tuple[Array, dict[str, Array]]:
  """The regressor loss (paper Eq. 3).

  Args:
    target: x = G(z), (n, H, W, 3). rec: G(E(x ⊙ m, m)), (n, H, W, 3).
    w: the true latent (n, *style): (n, w_dim), an SSN's (n, gh, gw, w_dim); repeated
      num_ws times for the latent loss.
    ws: E's W+ output (n, num_ws, *style).
    lpips_fn: LPIPS (see :data:`LpipsFn`); may be None only when ``lpips_weight == 0``.
  Returns:
    (total, {"loss", "mse", "lpips", "latent"}) scalars; "lpips" is absent without LPIPS.
  """
  mse = jnp.mean(jnp.square(rec - target))
  latent = jnp.mean(jnp.square(ws - w[:, None]))
  total = mse_weight * mse + latent_weight * latent
  metrics = {"mse": mse, "latent": latent}
  if lpips_weight:
    if lpips_fn is None:
      raise ValueError("lpips_weight > 0 needs an lpips_fn (see make_lpips_fn)")
    metrics["lpips"] = jnp.mean(lpips_fn(rec, target))
    total = total + lpips_weight * metrics["lpips"]
  metrics["loss"] = total
  return total, metrics


def make_lpips_fn(params: Any, net: str = "vgg", resolution: int = 0) -> LpipsFn:
  """LPIPS of :mod:`jaxspatial.nets.lpips_net` as an :data:`LpipsFn`; both images are first
  resized to ``resolution`` (0 = as given) with the regressor's area resize (the official code
  area-pools to 256 before LPIPS). ``params`` may be traced (pass them into the jitted step)."""
  from jaxspatial.nets import lpips_net

  def fn(x: Array, y: Array, mask: Array | None = None) -> Array:
    if resolution:
      x, y = regressor_lib.area_resize(x, resolution), regressor_lib.area_resize(y, resolution)
      mask = None if mask is None else regressor_lib.area_resize(mask, resolution)
    if mask is None:
      return lpips_net.lpips_distance(params, x, y, net)
    d = lpips_net.lpips_distance(params, x, y, net, spatial=True)
    m = mask[..., 0]
    return jnp.sum(d * m, axis=(1, 2)) / jnp.maximum(jnp.sum(m, axis=(1, 2)), 1e-8)
  return fn


def load_lpips_params(loss_cfg: ml_collections.ConfigDict,
                      hint: str = "train without LPIPS: --config.loss.lpips_weight=0") -> Any:
  """The converted LPIPS weights named by ``loss.lpips_net`` (pass them into the jitted step and
  build :func:`make_lpips_fn` there), or None when ``loss.lpips_weight`` is 0. A missing weight
  file is a one-line :class:`UserError` saying how to get it, or ``hint``."""
  if not loss_cfg.get("lpips_weight", LOSS_DEFAULTS["lpips_weight"]):
    return None
  from jaxspatial.nets import weights
  try:
    return weights.load_params(f"lpips-{loss_cfg.get('lpips_net', LOSS_DEFAULTS['lpips_net'])}")
  except UserError as e:
    raise UserError(f"{e} (or {hint})") from None


def heatmap_losses(centers: Array, log_sigmas: Array, true_centers: Array,
                   true_log_sigmas: Array) -> dict[str, Array]:
  """A SpatialGAN regressor's heatmap terms (ours; the paper has no heatmaps), added to Eq. 3
  with weights ``loss.center_weight`` and ``loss.sigma_weight``::

      L_center = mean ||ĉ − c||²,   L_sigma = mean (log σ̂ − log σ)²

  means over elements: centres (n, K, 2) in heatmap units, log-sigmas (n, K).
  """
  return {"center": jnp.mean(jnp.square(centers - true_centers)),
          "sigma": jnp.mean(jnp.square(log_sigmas - true_log_sigmas))}


# --------------------------------------------------------------------------- regression targets


class RegressionTarget:
  """What E predicts for one generator family and how the frozen G renders it; this class is
  StyleGAN2's (W+, the paper's). Pure, jax-traceable methods of the Flax generator ``g`` and
  its variables; a family whose latent or synthesis differs subclasses it (module docstring),
  and its family record names the instance (``families.Family.regression``).

  A *code* is E's output, which G renders: W+ here (an array), or a dict ``{"ws", <extras>}``
  when the layout has extras. The *truth* of a sample is the same structure with the mapped
  ``w`` (n, *style) in place of W+ (Eq. 3 repeats it per layer).
  """

  def latent_shape(self, g: Any) -> tuple[int, ...]:
    """Per-sample z shape."""
    return (g.z_dim,)

  def layout(self, g: Any) -> dict[str, Any]:
    """What E's head predicts (``models.regressor.regressor_model_config``'s ``layout``)."""
    return dict(num_ws=g.num_ws, w_dim=g.w_dim)

  def draw(self, g: Any, key: Array, n: int) -> Any:
    """G's random inputs for ``n`` samples: z ~ N(0, I)."""
    return jax.random.normal(key, (n, *self.latent_shape(g)), jnp.float32)

  def repeat(self, g: Any, w: Array) -> Array:
    """w (n, *style) -> W+ (n, num_ws, *style): the same style for every layer."""
    return jnp.broadcast_to(w[:, None], (w.shape[0], g.num_ws, *w.shape[1:]))

  def generate(self, g: Any, g_vars: Any, inputs: Any, noise_mode: str, rngs: dict
               ) -> tuple[Array, Any]:
    """:meth:`draw`'s inputs -> (x = G(z), the truth: w = mapping(z))."""
    w = g.apply(g_vars, inputs, method=type(g).mapping)
    return self.synthesize(g, g_vars, self.repeat(g, w), noise_mode, rngs), w

  def synthesize(self, g: Any, g_vars: Any, code: Any, noise_mode: str, rngs: dict) -> Array:
    """A code -> x (n, H, W, 3)."""
    return g.apply(g_vars, code, noise_mode, method=type(g).synthesize, rngs=rngs)

  def extra_losses(self, code: Any, truth: Any) -> dict[str, Array]:
    """Terms beyond Eq. 3, by name (each weighted by ``loss.<name>_weight``); none here."""
    return {}


def latent(code: Any) -> Array:
  """The W+ (or, of a truth, the ``w``) part of a code."""
  return code["ws"] if isinstance(code, dict) else code


class BlockGridTarget(RegressionTarget):
  """SSN: z a grid of blocks (n, gh, gw, z_dim), W+ a style grid per layer
  (n, num_ws, gh, gw, w_dim); E's head keeps space (the block grid)."""

  def latent_shape(self, g):
    return (*g.grid, g.z_dim)

  def layout(self, g):
    return {**super().layout(g), "grid_h": g.grid[0], "grid_w": g.grid[1]}


class HeatmapTarget(RegressionTarget):
  """SpatialGAN: E predicts W+ (indoor: one code per object and the background) and the
  heatmap's centres and log-sigmas; G renders the predicted heatmap (module docstring)."""

  def latent_shape(self, g):
    return tuple(g.latent_shape)

  def layout(self, g):
    k = len(hm.structure(g.heatmaps, g.num_objects)[0])
    codes = self.latent_shape(g)[:-1]
    return {**super().layout(g), "codes": codes[0] if codes else 0,
            "extras": {"centers": (k, 2), "log_sigmas": (k,)}}

  def draw(self, g, key, n):
    k_z, k_h = jax.random.split(key)
    return {"z": jax.random.normal(k_z, (n, *self.latent_shape(g)), jnp.float32),
            "heatmaps": g.sample_heatmaps(k_h, n)}

  def heatmaps(self, g: Any, code: dict[str, Array]) -> hm.Heatmaps:
    """The heatmaps a code's centres and log-sigmas describe (every amplitude 1)."""
    levels, parents = hm.structure(g.heatmaps, g.num_objects)
    sigmas = jnp.exp(code["log_sigmas"])
    return hm.Heatmaps(centers=code["centers"], sigmas=sigmas, amplitudes=jnp.ones_like(sigmas),
                       levels=levels, parents=parents)

  def generate(self, g, g_vars, inputs, noise_mode, rngs):
    h = inputs["heatmaps"]
    w = g.apply(g_vars, inputs["z"], h, method=type(g).mapping)
    x = g.apply(g_vars, self.repeat(g, w), h, noise_mode, method=type(g).synthesize, rngs=rngs)
    return x, {"ws": w, "centers": h.centers, "log_sigmas": jnp.log(h.sigmas)}

  def synthesize(self, g, g_vars, code, noise_mode, rngs):
    return g.apply(g_vars, code["ws"], self.heatmaps(g, code), noise_mode,
                   method=type(g).synthesize, rngs=rngs)

  def extra_losses(self, code, truth):
    return heatmap_losses(code["centers"], code["log_sigmas"], truth["centers"],
                          truth["log_sigmas"])


WPLUS_TARGET = RegressionTarget()
BLOCK_GRID_TARGET = BlockGridTarget()
HEATMAP_TARGET = HeatmapTarget()


def regression_target(generator_cfg: ml_collections.ConfigDict) -> RegressionTarget:
  """The regression target of the generator family ``generator_cfg.kind`` (its family
  record's ``regression``); a one-line UserError for a kind the regressor cannot invert."""
  kind = generator_cfg.get("kind")
  family = families.get(kind)
  if family.regression is None:
    can = ", ".join(families.kinds_with(lambda f: f.regression is not None))
    raise UserError(f"the regressor inverts {can} generators, not a {kind!r} model")
  return families.resolve(family.regression)


def layout_of(generator_cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """What a regressor of this generator predicts (``regressor_model_config``'s ``layout``)."""
  return regression_target(generator_cfg).layout(families.build_generator(generator_cfg))


# --------------------------------------------------------------------------- frozen generator


class GeneratorFns(NamedTuple):
  """The frozen generator as pure functions (closures over its variables)."""
  generate: Callable[[Any], tuple[Array, Any]]
  """G's inputs (:attr:`draw`'s; z (n, z_dim) for StyleGAN2) -> (x (n, H, W, 3), the truth:
  w (n, w_dim) for StyleGAN2); no truncation."""
  synthesize: Callable[[Any], Array]
  """E's code (W+ (n, num_ws, w_dim) for StyleGAN2) -> x (n, H, W, 3)."""
  draw: Callable[[Array, int], Any]
  """(key, n) -> G's random inputs for n samples."""
  target: RegressionTarget
  """The family's :class:`RegressionTarget`."""


def generator_fns(generator: Any, g_vars: Any, noise_mode: str = "const",
                  key: Array | None = None, target: RegressionTarget = WPLUS_TARGET
                  ) -> GeneratorFns:
  """Wraps a Flax generator and its variables ({"params", "buffers"}) as
  :class:`GeneratorFns` for its family's ``target`` (default StyleGAN2's W+;
  :func:`regression_target`). ``noise_mode="random"`` needs ``key`` (fresh noise per call
  site)."""
  if noise_mode == "random" and key is None:
    raise ValueError("noise_mode='random' needs a key")
  rngs = (lambda i: {"noise": jax.random.fold_in(key, i)}) if key is not None else (lambda i: {})
  return GeneratorFns(
      lambda inputs: target.generate(generator, g_vars, inputs, noise_mode, rngs(0)),
      lambda code: target.synthesize(generator, g_vars, code, noise_mode, rngs(1)),
      lambda k, n: target.draw(generator, k, n), target)


# --------------------------------------------------------------------------- loss functions


def _loss_weights(loss_cfg: ml_collections.ConfigDict) -> dict[str, float]:
  return {k: float(loss_cfg.get(k, LOSS_DEFAULTS[k]))
          for k in ("mse_weight", "lpips_weight", "latent_weight")}


def _with_extra_losses(loss: Array, metrics: dict[str, Array], extras: dict[str, Array],
                       loss_cfg: ml_collections.ConfigDict) -> Array:
  """``loss`` plus the target's extra terms, each weighted by ``loss.<name>_weight``; the terms
  and the new total go into ``metrics``."""
  for name, value in extras.items():
    loss = loss + float(loss_cfg.get(f"{name}_weight", LOSS_DEFAULTS[f"{name}_weight"])) * value
    metrics[name] = value
  metrics["loss"] = loss
  return loss


def _mask_args(loss_cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  return dict(t_range=(float(loss_cfg.get("mask_t_min", MASK_T_RANGE[0])),
                       float(loss_cfg.get("mask_t_max", MASK_T_RANGE[1]))),
              grid=int(loss_cfg.get("mask_grid", MASK_GRID)))


def regressor_loss_fn(e_params: Any, e_state: Any, g_apply: GeneratorFns, batch_key: Array,
                      cfg: ml_collections.ConfigDict, lpips_fn: LpipsFn | None = None,
                      constrain: Callable[[Array], Array] | None = None
                      ) -> tuple[Array, tuple[dict[str, Array], Any]]:
  """One training batch of the regressor loss, differentiable w.r.t. ``e_params``.

  Draws ``cfg.batch_size`` latents z ~ N(0, I) (and whatever else G's family draws, e.g.
  heatmaps) and masks from ``batch_key``, renders x = G(z) with the frozen generator, encodes
  ``E(x ⊙ m, m)`` in training mode (batch statistics), decodes with G and returns
  :func:`regression_losses` plus the family target's extra terms (:func:`heatmap_losses`).
  The RGB-only regressor (``model.use_mask=False``) sees the whole image, as in the official
  code.

  Args:
    e_params, e_state: E's ``params`` and ``batch_stats``.
    g_apply: the frozen generator (:func:`generator_fns`).
    batch_key: this step's key (fold in the step number outside).
    cfg: the run config (``batch_size``, ``model`` of kind "regressor", ``loss``).
    lpips_fn: needed when ``cfg.loss.lpips_weight > 0``.
    constrain: optional ``with_sharding_constraint`` applied to the batch-major arrays
      (z and masks) so that the batch is split over the data axis.
  Returns:
    ``(loss, (metrics, new_batch_stats))``; metrics also hold "mask_coverage".
  """
  constrain = constrain or (lambda a: a)
  m_cfg, loss_cfg = cfg.model, cfg.loss
  n, res = int(cfg.batch_size), int(m_cfg.resolution)
  k_z, k_m = jax.random.split(batch_key)
  inputs = jax.tree.map(constrain, g_apply.draw(k_z, n))
  x, truth = jax.tree.map(jax.lax.stop_gradient, g_apply.generate(inputs))
  if m_cfg.use_mask:
    mask = constrain(sample_masks(k_m, n, res, **_mask_args(loss_cfg)))
  else:
    mask = jnp.ones((n, res, res, 1), jnp.float32)
  regressor = regressor_lib.build_regressor(m_cfg)
  code, updates = regressor.apply({"params": e_params, "batch_stats": e_state}, x, mask,
                                  train=True, mutable=["batch_stats"])
  rec = g_apply.synthesize(code)
  loss, metrics = regression_losses(x, rec, latent(truth), latent(code), lpips_fn=lpips_fn,
                                    **_loss_weights(loss_cfg))
  loss = _with_extra_losses(loss, metrics, g_apply.target.extra_losses(code, truth), loss_cfg)
  metrics["mask_coverage"] = jnp.mean(mask)
  return loss, (metrics, updates["batch_stats"])


def finetune_loss_fn(e_params: Any, e_state: Any, g_apply: GeneratorFns, key: Array,
                     x: Array, mask: Array, cfg: ml_collections.ConfigDict,
                     lpips_fn: LpipsFn | None = None) -> tuple[Array, dict[str, Array]]:
  """Per-image finetuning loss (paper Supp. "Improving compositions on real images").

  Each call draws fresh random masks r and encodes the hints ``x ⊙ (m ⊙ r)`` with E's running
  statistics; the reconstruction ``G(E(.))`` is compared with x on the known pixels m only:
  ``λ_mse · masked MSE + λ_lpips · masked LPIPS`` (the official notebook's MSE + LPIPS; with
  m = 1 exactly that). x (n, H, W, 3), mask (n, H, W, 1) in {0, 1}.
  """
  weights = _loss_weights(cfg.loss)
  n, res = x.shape[0], x.shape[1]
  hints = mask * sample_masks(key, n, res, **_mask_args(cfg.loss))
  regressor = regressor_lib.build_regressor(cfg.model)
  code = regressor.apply({"params": e_params, "batch_stats": e_state}, x, hints, train=False)
  rec = g_apply.synthesize(code)
  metrics = {"mse": jnp.mean(masked_mse(rec, x, mask))}
  total = weights["mse_weight"] * metrics["mse"]
  if weights["lpips_weight"]:
    if lpips_fn is None:
      raise ValueError("lpips_weight > 0 needs an lpips_fn")
    metrics["lpips"] = jnp.mean(lpips_fn(rec, x, mask))
    total = total + weights["lpips_weight"] * metrics["lpips"]
  metrics["loss"] = total
  return total, metrics
