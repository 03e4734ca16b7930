"""SpatialGAN's inference API: the model type ``js.load`` returns for kind "spatialgan".

    import jaxspatial as js
    m = js.load("runs/spatialgan-demo")           # a SpatialGANModel
    z = m.sample_z(5, 1)
    h = m.sample_heatmaps(5, 1)                    # Heatmaps: centres, sigmas, levels
    before = m.generate(z, heatmaps=h)
    after = m.generate(z, heatmaps=h.move(0, 0.3, -0.2))   # the object follows centre 0
    cams = m.gradcam(before)                       # {level: (n, R, R)} D's attention
    losses = m.alignment(z, heatmaps=h)            # {"total": ..., level: ...}

The training plug-in is :mod:`jaxspatial.training.spatialgan`; ``jaxspatial.spatialgan``
gathers the public names.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial.api.model import GeneratorModel, check_noise, check_shape, slice_maps
from jaxspatial.errors import UserError
from jaxspatial.losses import spatialgan as align
from jaxspatial.models import heatmaps as heatmaps_lib
from jaxspatial.models.heatmaps import Heatmaps

Array = jax.Array


class SpatialGANModel(GeneratorModel):
  """A trained SpatialGAN: ``GeneratorModel``'s API plus heatmaps.

  Indoor models (``model.encoding == "indoor"``) take one latent per object plus a
  background latent: ``z`` is (n, 1 + K, z_dim) (background first) and W+ is
  (n, num_ws, 1 + K, w_dim); :meth:`restyle` redraws one object's latent.
  """

  def __init__(self, config, variables, **kw):
    super().__init__(config, variables, **kw)
    g = self.generator
    cls = type(g)
    self._mapping = self.jit(lambda v, z, h: g.apply(v, z, h, method=cls.mapping))
    self._synthesize = self.jit(
        lambda v, ws, h, noise_mode, key: g.apply(v, ws, h, noise_mode, method=cls.synthesize,
                                                  rngs={"noise": key}),
        static_argnums=3)
    self._synthesize_maps = self.jit(
        lambda v, ws, h, maps: g.apply(v, ws, h, "const", maps, method=cls.synthesize))
    self._sample_heatmaps = jax.jit(g.sample_heatmaps, static_argnums=1)
    self._levels, self._parents = heatmaps_lib.structure(g.heatmaps, g.num_objects)
    self._gradcam = self._alignment = None   # jitted on first use (they need D)

  # ------------------------------------------------------------------ properties

  @property
  def indoor(self) -> bool:
    return self.generator.encoding == "indoor"

  @property
  def latent_shape(self) -> tuple[int, ...]:
    return tuple(self.generator.latent_shape)

  @property
  def style_shape(self) -> tuple[int, ...]:
    """Per-sample, per-layer w shape: (w_dim,), indoor (1 + K, w_dim)."""
    return (*self.latent_shape[:-1], self.w_dim)

  @property
  def num_centers(self) -> int:
    return len(self._levels)

  # ------------------------------------------------------------------ API

  def sample_z(self, seed: int, n: int = 1) -> np.ndarray:
    """(n, z_dim), indoor (n, 1 + K, z_dim); row i is the same for any n."""
    keys = jax.random.split(jax.random.key(seed), n)
    return np.asarray(jax.vmap(lambda k: jax.random.normal(k, self.latent_shape))(keys))

  def sample_heatmaps(self, seed: int, n: int = 1) -> Heatmaps:
    """``n`` heatmaps drawn as in training (numpy arrays; row i the same for any n)."""
    return self._sample_heatmaps(jax.random.key(seed), n).numpy()

  def restyle(self, z: np.ndarray, i: int, seed: int) -> np.ndarray:
    """Indoor models: ``z`` with object ``i``'s latent redrawn from ``seed``."""
    if not self.indoor:
      raise UserError("restyle needs an indoor model (model.encoding='indoor', one style "
                      "code per object)")
    z = check_shape(z, (None, *self.latent_shape), "z").copy()
    if not 0 <= i < self.num_centers:
      raise UserError(f"object {i} out of range 0..{self.num_centers - 1}")
    z[:, 1 + i] = self.sample_z(seed, len(z))[:, 1 + i]
    return z

  def mapping(self, z: np.ndarray, heatmaps: Heatmaps | None = None) -> np.ndarray:
    """z -> w (n, w_dim), indoor (n, 1 + K, w_dim). ``heatmaps`` only matters for the
    ``flatten`` ablation."""
    z = check_shape(z, (None, *self.latent_shape), "z")
    h = self.check_heatmaps(heatmaps, len(z)) if heatmaps is not None else None
    if h is None and self.generator.encoding == "flatten":
      raise UserError("this model (encoding='flatten') maps z together with heatmaps")
    if not len(z):
      raise UserError("z holds no latents")
    return self._chunked(
        lambda i, s: self._mapping(self.g_vars, z[s], None if h is None else h.take(s)), len(z))

  def synthesize(self, ws: np.ndarray, heatmaps: Heatmaps | None = None,
                 noise: str | Sequence[np.ndarray] = "const", seed: int = 0) -> np.ndarray:
    """W+ and heatmaps -> images (n, H, W, 3); ``heatmaps`` default: ``sample_heatmaps(seed)``;
    ``noise`` a mode or explicit per-layer maps (``GeneratorModel.synthesize``)."""
    ws = check_shape(ws, (None, self.num_ws, *self.latent_shape[:-1], self.w_dim), "ws")
    h = self._default_heatmaps(heatmaps, len(ws), seed)
    if not isinstance(noise, str):
      maps = self.check_noise_maps(noise, len(ws))
      return self._chunked(lambda i, s: self._synthesize_maps(
          self.g_vars, ws[s], h.take(s), slice_maps(maps, s)), len(ws))
    check_noise(noise)
    key = jax.random.key(seed)
    return self._chunked(lambda i, s: self._synthesize(self.g_vars, ws[s], h.take(s), noise,
                                                       jax.random.fold_in(key, i)), len(ws))

  def generate(self, z: np.ndarray, truncation: float = 1.0, noise: str = "const",
               seed: int = 0, heatmaps: Heatmaps | None = None, **controls: Any) -> np.ndarray:
    """z (+ heatmaps) -> images (n, H, W, 3); heatmaps default ``sample_heatmaps(seed, n)``;
    a single heatmap (batch 1) is used for every z."""
    if controls:
      raise TypeError(f"spatialgan generate() takes heatmaps=..., got {sorted(controls)}")
    z = check_shape(z, (None, *self.latent_shape), "z")
    h = self._default_heatmaps(heatmaps, len(z), seed)
    w = self.mapping(z, h)
    if truncation != 1.0:
      w = self.truncate(w, truncation)
    ws = np.repeat(w[:, None], self.num_ws, axis=1)
    return self.synthesize(ws, h, noise=noise, seed=seed)

  # ------------------------------------------------------------------ attention

  def gradcam(self, x: np.ndarray) -> dict[int, np.ndarray]:
    """D's GradCAM attention on images ``x`` (n, R, R, 3), as the alignment loss sees it
    (the paper's attention figures): ``{level l: (n, R, R)}`` from D's ``4 * 2^l`` px block
    output (official keys b8, b16, b32), upsampled with aligned corners and min-max
    normalised per sample. The GradCAM weights come from the batch-summed G loss, so
    samples of one minibatch-stddev group affect each other, as in the official code."""
    d_vars = self._discriminator_vars()
    x = check_shape(x, (None, self.resolution, self.resolution, 3), "x")
    if self._gradcam is None:
      d_apply = align.discriminator_apply(self.discriminator)
      self._gradcam = self.jit(lambda d, images: align.normalized_cams(d_apply, d, images))
    cams = self._gradcam(d_vars, x)
    return {align.level_index(res): np.asarray(c) for res, c in cams.items()}

  def alignment(self, z: np.ndarray, heatmaps: Heatmaps | None = None, noise: str = "const",
                seed: int = 0, network: str = "g_ema") -> dict[Any, float]:
    """The GradCAM alignment loss of ``G(z, heatmaps)`` against those heatmaps, computed by
    the function the training step adds to every G step
    (:func:`jaxspatial.losses.spatialgan.gradcam_alignment_loss`, objective and threshold
    from ``config.loss``): ``{"total": sum, level l: that level's term}``. ``network``:
    "g_ema" or "g" (the generator the official loss is computed with, when saved)."""
    d_vars = self._discriminator_vars()
    if network not in ("g_ema", "g") or network not in self.variables:
      raise UserError(f"network must be 'g_ema' or 'g' and saved in the checkpoint; this one "
                      f"has {sorted(k for k in self.variables if k.startswith('g'))}")
    z = check_shape(z, (None, *self.latent_shape), "z")
    check_noise(noise)
    h = self._default_heatmaps(heatmaps, len(z), seed)
    loss_cfg = self.config.get("loss", {})
    resolutions = align.cam_resolutions(
        self.resolution, tuple(loss_cfg.get("align_resolutions",
                                            align.ALIGN_DEFAULTS["align_resolutions"])))
    if self._alignment is None:
      g, d_apply = self.generator, align.discriminator_apply(self.discriminator)

      def loss(g_vars, d, z, h, noise_mode, key):
        img = g.apply(g_vars, z, h, noise_mode=noise_mode, rngs={"noise": key})
        return align.gradcam_alignment_loss(
            d_apply, d, img, h, resolutions=resolutions,
            threshold=float(loss_cfg.get("align_threshold",
                                         align.ALIGN_DEFAULTS["align_threshold"])),
            objective=loss_cfg.get("align_objective", align.ALIGN_DEFAULTS["align_objective"]))
      self._alignment = self.jit(loss, static_argnums=4)
    total, metrics = self._alignment(self.variables[network], d_vars, z, h, noise,
                                     jax.random.key(seed))
    out: dict[Any, float] = {"total": float(total)}
    out.update({align.level_index(r): float(metrics[f"align/{r}px"]) for r in resolutions})
    return out

  def _discriminator_vars(self) -> Any:
    if self.d_vars is None:
      raise UserError("GradCAM needs the discriminator; this checkpoint holds none ('d')")
    return self.d_vars

  # ------------------------------------------------------------------ hooks of the edit layer
  # (GeneratorModel's: the heatmaps are the controls; a projection optimises their centres and
  # log-sigmas, a drag their centres, after the coarse move of eq. 6)

  def sample_w(self, g_vars, key, n):
    g = self.generator
    z = jax.random.normal(key, (n, *self.latent_shape))
    h = g.sample_heatmaps(jax.random.fold_in(key, 1), n)
    return g.apply(g_vars, z, h, method=type(g).mapping)

  def synthesis(self, g_vars, ws, controls, noise, features=False):
    g = self.generator
    return g.apply(g_vars, ws, controls, "const", noise, features, method=type(g).synthesize)

  def edit_controls(self, controls, n, seed=None):
    """The image's heatmaps, checked; drawn from ``seed`` when not given (a projection's
    start); without either, UserError: a drag needs the heatmaps of the image it edits."""
    if controls is None:
      if seed is None:
        raise UserError("a SpatialGAN edit needs the image's heatmaps (heatmaps=...)")
      controls = self.sample_heatmaps(seed, n)
    return self.check_heatmaps(controls, n)

  def control_params(self, controls, edit):
    if edit == "drag":
      return {"centers": controls.centers}
    return {"centers": controls.centers, "log_sigmas": jnp.log(controls.sigmas)}

  def with_control_params(self, controls, params):
    kw = {}
    if "centers" in params:
      kw["centers"] = params["centers"]
    if "log_sigmas" in params:
      kw["sigmas"] = jnp.exp(params["log_sigmas"])
    return controls.replace(**kw) if kw else controls

  def drag_controls(self, controls, handles, targets, alpha, radius):
    """Every root centre within ``radius`` (heatmap units) of a handle moves by
    ``alpha (t - p)`` with its children (SpatialGAN eq. 6, :func:`coarse_move`)."""
    return coarse_move(controls, handles, targets, self.resolution, alpha, radius)

  # ------------------------------------------------------------------ helpers

  def _default_heatmaps(self, heatmaps: Heatmaps | None, n: int, seed: int) -> Heatmaps:
    if heatmaps is None:
      return self.sample_heatmaps(seed, n)
    return self.check_heatmaps(heatmaps, n)

  def check_heatmaps(self, h, n: int) -> Heatmaps:
    """``h`` as numpy heatmaps for ``n`` latents (one heatmap is repeated ``n`` times);
    UserError unless they have this model's structure."""
    if not isinstance(h, Heatmaps):
      raise UserError(f"heatmaps must be a Heatmaps (from sample_heatmaps), got {type(h).__name__}")
    if (h.levels, h.parents) != (self._levels, self._parents):
      raise UserError(f"heatmaps have levels {h.levels}; this model takes {self._levels}")
    h = h.numpy()
    if h.batch_size == 1 and n != 1:
      h = h.take(np.zeros(n, int))
    if h.batch_size != n:
      raise UserError(f"{h.batch_size} heatmaps for {n} latents (give 1 or {n})")
    return h


def coarse_move(heatmaps: Heatmaps, handles: np.ndarray, targets: np.ndarray, size: int,
                alpha: float, radius: float) -> Heatmaps:
  """SpatialGAN eq. 6 on a one-sample ``heatmaps``: every root centre within ``radius``
  (heatmap units) of a handle ``(row, col)`` (pixels of a ``size`` image) moves by
  ``alpha (t - p)`` with its children -- the optimisation-free coarse move before a drag."""
  to_unit = 2.0 / (size - 1)
  p = np.asarray(handles, np.float64) * to_unit - 1.0
  shift = (np.asarray(targets, np.float64) - np.asarray(handles, np.float64)) * to_unit
  centres = np.asarray(heatmaps.centers)[0]
  for i, parent in enumerate(heatmaps.parents):
    if parent != -1:
      continue
    near = np.linalg.norm(p - centres[i], axis=-1) <= radius
    if near.any():
      dy, dx = alpha * shift[near].mean(axis=0)
      heatmaps = heatmaps.move(i, float(dy), float(dx))
  return heatmaps
