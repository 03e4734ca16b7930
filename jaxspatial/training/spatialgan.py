"""SpatialGAN's training plug-in: the shared GAN step with heatmaps.

``SpatialGANPlugin`` samples ``z`` and a fresh heatmap per sample on every step, feeds the
heatmaps to G, and adds ``config.loss.align_weight`` x the GradCAM alignment loss and
``config.loss.locality_weight`` x the heatmap-locality penalty (off by default) to every G
step. Lazy alignment (ours, not the paper's): with ``config.loss.align_every`` k > 1 the
alignment term runs on every k-th step only (``gan_step.Phase.align``), weighted k x
``align_weight``, as lazy R1 scales its penalty by its interval; k = 1 (every preset) is
the paper's every-step term.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxspatial import checkpoint, losses
from jaxspatial.losses import spatialgan as align
from jaxspatial.models.heatmaps import Heatmaps
from jaxspatial.models.spatialgan import transfer_from_stylegan2
from jaxspatial.training import gan_step

Array = jax.Array


class SpatialGANPlugin(gan_step.StyleGAN2Plugin):
  """``gan_step`` adapter: inputs ``{"z", "z_mix", "heatmaps"}`` (a fresh heatmap per sample
  and step), G fed the heatmaps, and ``loss.align_weight`` x GradCAM alignment on every G
  step (``loss.align_objective`` plain | min, ``loss.align_threshold``,
  ``loss.align_resolutions``)."""

  def __init__(self, config, generator, discriminator):
    super().__init__(config, generator, discriminator)
    self.d_apply = align.discriminator_apply(discriminator)

  def sample_inputs(self, key: Array, n: int) -> dict[str, Any]:
    k_z, k_mix, k_h = jax.random.split(key, 3)
    shape = (n,) + tuple(self.generator.latent_shape)
    return {"z": jax.random.normal(k_z, shape), "z_mix": jax.random.normal(k_mix, shape),
            "heatmaps": self.generator.sample_heatmaps(k_h, n)}

  def for_phase(self, phase: gan_step.Phase) -> "SpatialGANPlugin":
    """Lazy alignment: with ``loss.align_every`` k > 1, a plug-in whose alignment weight is
    k x ``align_weight`` on the steps that run the term (``phase.align``) and 0 (the term not
    computed) on the others; with k = 1 this plug-in itself."""
    get = functools.partial(losses.setting, self.config.loss, defaults=align.ALIGN_DEFAULTS)
    every = int(get("align_every"))
    if every == 1:
      return self
    config = self.config.copy_and_resolve_references()
    with config.unlocked():
      config.loss.align_weight = float(get("align_weight")) * every if phase.align else 0.0
    return type(self)(config, self.generator, self.discriminator)

  def init_inputs(self) -> tuple:
    return (jnp.zeros((1,) + tuple(self.generator.latent_shape)),
            self.generator.sample_heatmaps(jax.random.key(0), 1))

  def init_models(self, path: str) -> dict:
    """A SpatialGAN checkpoint as it is (fine-tuning), or a StyleGAN2 one transferred: its
    G and D weights copied into a fresh SpatialGAN (:func:`transfer_from_stylegan2`)."""
    if checkpoint.read_config(path).model.kind != "stylegan2":
      return super().init_models(path)
    models = checkpoint.restore_models(path)
    key = jax.random.key(int(self.config.seed))
    fresh = jax.jit(self.generator.init)({"params": key, "noise": key}, *self.init_inputs())
    out = {"d": models["d"]} if "d" in models else {}
    for name in ("g", "g_ema"):
      source = models.get(name, models.get("g_ema"))
      if source is not None:
        out[name] = transfer_from_stylegan2(source, fresh)
    return out

  def mapping(self, g_vars: Any, z: Array, heatmaps: Heatmaps | None = None) -> Array:
    return self.generator.apply(g_vars, z, heatmaps, method=type(self.generator).mapping)

  def styles(self, g_vars: Any, inputs: dict, key: Array, mixing_prob: float):
    w = self.mapping(g_vars, inputs["z"], inputs["heatmaps"])
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws) + w.shape[1:])
    if mixing_prob > 0:
      w2 = self.mapping(g_vars, inputs["z_mix"], inputs["heatmaps"])
      ws = gan_step.mix_styles(ws, w2, key, mixing_prob)
    return ws, w.reshape(-1, w.shape[-1]).mean(0)

  def synthesize(self, g_vars: Any, ws: Array, inputs: dict, key: Array) -> Array:
    return self.generator.apply(g_vars, ws, inputs["heatmaps"], "random",
                                method=type(self.generator).synthesize, rngs={"noise": key})

  def render(self, g_vars: Any, inputs: dict) -> Array:
    ws, _ = self.styles(g_vars, inputs, jax.random.key(0), 0.0)
    return self.generator.apply(g_vars, ws, inputs["heatmaps"], "const",
                                method=type(self.generator).synthesize,
                                rngs={"noise": jax.random.key(0)})

  @property
  def reads_d_features(self) -> bool:
    """The alignment term reads D's features of the fakes (when its weight is not 0)."""
    return float(losses.setting(self.config.loss, "align_weight",
                                defaults=align.ALIGN_DEFAULTS)) != 0.0

  def extra_generator_loss(self, g_vars: Any, d_vars: Any, inputs: dict, ws: Array,
                           fake: Array, key: Array, d_features: dict | None = None
                           ) -> tuple[Array, dict]:
    """``align_weight`` x the GradCAM alignment on ``fake`` plus ``locality_weight`` x the
    heatmap-locality penalty (each skipped entirely at weight 0). ``d_features``: D's block
    outputs of ``fake`` (the G step's adversarial pass; D's weights take no gradient there),
    else the alignment runs a D pass of its own."""
    total, metrics = jnp.zeros((), jnp.float32), {}
    get = functools.partial(losses.setting, self.config.loss, defaults=align.ALIGN_DEFAULTS)
    weight = float(get("align_weight"))
    if weight != 0.0:
      loss, align_metrics = align.gradcam_alignment_loss(
          self.d_apply, d_vars, fake, inputs["heatmaps"],
          resolutions=tuple(get("align_resolutions")), threshold=float(get("align_threshold")),
          objective=get("align_objective"), features=d_features)
      total, metrics = total + weight * loss, {"align_loss": loss, **align_metrics}
    loc = functools.partial(losses.setting, self.config.loss, defaults=align.LOCALITY_DEFAULTS)
    weight = float(loc("locality_weight"))
    if weight != 0.0:
      loss = self.locality_loss(g_vars, inputs, key, threshold=float(loc("locality_threshold")),
                                shrink=int(loc("locality_batch_shrink")))
      total, metrics = total + weight * loss, {**metrics, "locality_loss": loss}
    return total, metrics

  def locality_loss(self, g_vars: Any, inputs: dict, key: Array, *, threshold: float,
                    shrink: int = 1) -> Array:
    """The heatmap-locality penalty (``losses.spatialgan.heatmap_locality_regularizer``) on
    the first ``batch // shrink`` samples' ``z`` and heatmaps: fresh images without style
    mixing, one noise draw for both renderings."""
    k_edit, k_noise = jax.random.split(key)
    n = max(inputs["z"].shape[0] // shrink, 1)
    z = inputs["z"][:n]

    def generate(heatmaps: Heatmaps) -> Array:
      w = self.mapping(g_vars, z, heatmaps)
      ws = jnp.broadcast_to(w[:, None], (n, self.num_ws) + w.shape[1:])
      return self.synthesize(g_vars, ws, {"heatmaps": heatmaps}, k_noise)

    loss, _ = align.heatmap_locality_regularizer(
        generate, inputs["heatmaps"].take(slice(0, n)), k_edit, threshold=threshold)
    return loss
