"""Public SSN API (``js.ssn``): block latents, block resampling, the model, its metric.

    import jaxspatial as js
    m = js.load("runs/ssn")                         # an SSNModel
    z = m.sample_z(seed=3, n=1)                     # (1, nh, nw, nz)
    z2 = js.ssn.resample_blocks(z, [(0, 1), (0, 2)], seed=7)
    x, x2 = m.generate(z), m.generate(z2)           # block (0,1),(0,2) redrawn, rest kept
    js.ssn.distortion(m, num_samples=256)           # Table-2 distortion with a 95% CI

Latent RNG (Definition 1 by construction): block ``(r, c)`` of sample ``i`` drawn with
``seed`` is ``normal(fold_in(fold_in(fold_in(key(seed), i), r), c), (nz,))``. A fresh
``sample_z(seed, n)`` and ``resample_blocks(z, blocks, seed)`` use this same rule, so
resampling every block in turn with one seed gives exactly ``sample_z(seed, n)``, blocks not
listed are untouched, and a block's values do not depend on ``n`` or on the grid size.
Since the blocks are i.i.d. N(0, I), resampling all blocks with any seeds, in any order,
yields a fresh sample from P(z) — the paper's Definition 1 for P^a = "redraw z_a".
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxspatial import checkpoint, cli, losses_ssn
from jaxspatial.cli import UserError
from jaxspatial.model import GeneratorModel
from jaxspatial.models import ssn as ssn_lib
from jaxspatial.training import gan_step

Array = jax.Array


# ------------------------------------------------------------------------ latents


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _draw_blocks(seed: Array, n: int, nh: int, nw: int, nz: int) -> Array:
  base = jax.random.key(seed)

  def block(i, r, c):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(base, i), r), c)
    return jax.random.normal(key, (nz,))

  rows = jax.vmap(lambda i, r: jax.vmap(lambda c: block(i, r, c))(jnp.arange(nw)),
                  in_axes=(None, 0))
  return jax.vmap(lambda i: rows(i, jnp.arange(nh)))(jnp.arange(n))


def sample_z(seed: int, n: int, grid: Sequence[int], z_dim: int) -> np.ndarray:
  """(n, nh, nw, z_dim) i.i.d. N(0, 1) block latents (the RNG rule in the module docstring)."""
  nh, nw = (int(g) for g in grid)
  return np.asarray(_draw_blocks(jnp.uint32(seed), int(n), nh, nw, int(z_dim)))


def _block_list(blocks: Iterable[Sequence[int]], grid: tuple[int, int]) -> list[tuple[int, int]]:
  out = []
  for b in blocks:
    if len(b) != 2:
      raise UserError(f"a block is a (row, col) pair, got {tuple(b)}")
    r, c = int(b[0]), int(b[1])
    if not (0 <= r < grid[0] and 0 <= c < grid[1]):
      raise UserError(f"block ({r}, {c}) is outside the {grid[0]}x{grid[1]} latent grid")
    out.append((r, c))
  return out


def resample_blocks(z: np.ndarray, blocks: Iterable[Sequence[int]], seed: int) -> np.ndarray:
  """``z`` (n, nh, nw, nz) with the listed ``(row, col)`` blocks redrawn from ``seed``.

  The new block ``(r, c)`` of sample ``i`` equals ``sample_z(seed, n, ...)[i, r, c]``; all
  other blocks are returned unchanged.
  """
  z = np.asarray(z, np.float32)
  if z.ndim != 4:
    raise UserError(f"z has shape {z.shape}; expected (n, nh, nw, nz)")
  n, nh, nw, nz = z.shape
  mask = np.zeros((1, nh, nw, 1), bool)
  for r, c in _block_list(blocks, (nh, nw)):
    mask[0, r, c] = True
  return np.where(mask, sample_z(seed, n, (nh, nw), nz), z)


# ------------------------------------------------------------------------ model


class SSNModel(GeneratorModel):
  """``js.load`` result for kind "ssn": spatial latents (n, nh, nw, nz), spatial W+
  (n, num_ws, nh, nw, w_dim), and :meth:`resample`."""

  def __init__(self, config, variables, **kw):
    super().__init__(config, variables, **kw)
    self.grid: tuple[int, int] = ssn_lib.grid_of(config.model)

  def sample_z(self, seed: int, n: int = 1) -> np.ndarray:
    """(n, nh, nw, z_dim) block latents from ``seed`` (row i is the same for any n)."""
    return sample_z(seed, n, self.grid, self.z_dim)

  @property
  def latent_shape(self) -> tuple[int, ...]:
    return (*self.grid, self.z_dim)

  @property
  def style_shape(self) -> tuple[int, ...]:
    """mapping() gives the per-block MLP + block encoder output (n, nh, nw, w_dim); truncation
    acts per block toward ``w_avg``."""
    return (*self.grid, self.w_dim)

  def resample(self, z: np.ndarray, blocks: Iterable[Sequence[int]], seed: int) -> np.ndarray:
    """:func:`resample_blocks` after checking ``z`` against this model's grid."""
    z = self._check(z, (None, *self.latent_shape), "z")
    return resample_blocks(z, blocks, seed)


# ------------------------------------------------------------------------ metric


def distortion(model: SSNModel, num_samples: int = 256, seed: int = 0,
               resample_seed: int | None = None, noise: str = "const",
               truncation: float = 1.0) -> dict[str, float]:
  """Block-resampling distortion (the paper's Table 2; its definition is ours, the paper
  gives none).

  For ``num_samples`` latents ``z_i = sample_z(seed)`` and *every* block ``a``: ``z̃`` = ``z_i``
  with block ``a`` from ``z'_i = sample_z(resample_seed)`` (default ``seed + 1``); images are
  clipped to [-1, 1] and ``d_{i,a}`` is the mean over the pixels of the blocks ``b ≠ a`` of
  :func:`jaxspatial.losses_ssn.pixel_distortion` (squared RGB distance), the quantity R_D
  penalises. Reported: ``distortion`` = mean over i and a;
  ``ci95`` = half-width of the normal 95% interval from the per-sample means
  ``d_i = mean_a d_{i,a}`` (samples are independent, blocks of one sample are not).
  Costs ``num_samples * (1 + nh*nw)`` generator calls, with the constant noise by default
  so that only the latent block changes.
  """
  if num_samples < 2:
    raise UserError("distortion needs at least 2 samples for its confidence interval")
  nh, nw = model.grid
  z = model.sample_z(seed, num_samples)
  z_prime = model.sample_z(seed + 1 if resample_seed is None else resample_seed, num_samples)
  clip = lambda x: np.clip(x, -1.0, 1.0)
  x0 = clip(model.generate(z, truncation=truncation, noise=noise))
  _, h, w, _ = x0.shape
  per_block = np.zeros((num_samples, nh * nw), np.float64)
  for a in cli.progress(range(nh * nw), desc="distortion", unit="block"):
    r, c = divmod(a, nw)
    z_tilde = z.copy()
    z_tilde[:, r, c] = z_prime[:, r, c]
    x1 = clip(model.generate(z_tilde, truncation=truncation, noise=noise))
    blocks = np.asarray(losses_ssn.block_means(losses_ssn.pixel_distortion(x1, x0), (nh, nw)))
    keep = np.ones((nh, nw), bool)
    keep[r, c] = False
    per_block[:, a] = blocks[:, keep].mean(axis=1)
  d_i = per_block.mean(axis=1)
  std = float(np.std(d_i, ddof=1))
  return {"distortion": float(d_i.mean()), "ci95": 1.96 * std / np.sqrt(num_samples),
          "std": std, "num_samples": int(num_samples), "num_blocks": nh * nw}


# ------------------------------------------------------------------------ training


class SSNFamily(gan_step.StyleGAN2Family):
  """How the shared GAN step drives an SSN: spatial latents and the R_D regulariser.

  Config keys read (``loss.*``): ``distortion_weight`` (λ_D; 0 disables R_D),
  ``distortion_reduction`` ("mean" | "sum", see :mod:`jaxspatial.losses_ssn`),
  ``distortion_batch_shrink`` (R_D on ``batch // shrink`` samples).
  """

  @property
  def grid(self) -> tuple[int, int]:
    return ssn_lib.grid_of(self.config.model)

  def _latent_shape(self, n: int) -> tuple[int, ...]:
    return (n, *self.grid, self.config.model.z_dim)

  def sample_inputs(self, key: Array, n: int) -> dict[str, Array]:
    k1, k2, k3 = jax.random.split(key, 3)
    shape = self._latent_shape(n)
    return {"z": jax.random.normal(k1, shape), "z_mix": jax.random.normal(k2, shape),
            "z_resample": jax.random.normal(k3, shape)}

  def init_inputs(self) -> tuple:
    return (jnp.zeros(self._latent_shape(1)),)

  def init_models(self, path: str) -> dict:
    """An SSN checkpoint as it is, or a StyleGAN2 one transferred (paper §3.4)."""
    return transfer_init_models(path, self.config.model)

  def extra_generator_loss(self, g_vars: Any, d_vars: Any, inputs: dict, ws: Array,
                           fake: Array, key: Array) -> tuple[Array, dict]:
    """``λ_D · R_D`` on fresh images of (z, z̃) without style mixing, one noise draw for both."""
    loss_cfg = self.config.loss
    weight = float(loss_cfg.get("distortion_weight", 0.0))
    if weight <= 0:
      return jnp.zeros((), jnp.float32), {}
    k_block, k_noise = jax.random.split(key)
    n = max(inputs["z"].shape[0] // int(loss_cfg.get("distortion_batch_shrink", 1)), 1)

    def generate(z: Array) -> Array:
      w = self.mapping(g_vars, z)
      ws_z = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws) + w.shape[1:])
      return self.synthesize(g_vars, ws_z, inputs, k_noise)

    reg, _ = losses_ssn.distortion_regularizer(
        generate, inputs["z"][:n], inputs["z_resample"][:n], k_block,
        reduction=loss_cfg.get("distortion_reduction", "mean"))
    return weight * reg, {"distortion_reg": reg}


def transfer_init_models(path: str | pathlib.Path,
                         model_cfg: ml_collections.ConfigDict) -> dict:
  """Models to start SSN training from (``config.init_from``): an SSN checkpoint as it is,
  or a StyleGAN2 checkpoint transferred with ``model_cfg``'s grid and encoder (paper §3.4).

  Returns ``{"g", "g_ema", "d"}`` (whichever the checkpoint has; ``g`` falls back to
  ``g_ema``). UserError if the architectures differ.
  """
  src_config = checkpoint.read_config(path)
  models = checkpoint.restore_models(path)
  kind = src_config.model.kind
  if kind == "stylegan2":
    models, src_config, _ = ssn_lib.transfer_from_stylegan2(
        models, src_config, [], grid=ssn_lib.grid_of(model_cfg),
        encoder_blocks=int(model_cfg.get("encoder_blocks", 1)),
        style_upsample=model_cfg.get("style_upsample", "nearest"))
  elif kind != "ssn":
    raise UserError(f"{path} holds a {kind!r} model; SSN training can start from a "
                    "stylegan2 or ssn checkpoint")
  keys = ("resolution", "z_dim", "w_dim", "n_mlp", "grid_h", "grid_w", "encoder_blocks")
  diff = [k for k in keys if src_config.model.get(k) != model_cfg.get(k)]
  if ssn_lib.build_generator(src_config.model).channels != ssn_lib.build_generator(
      model_cfg).channels:
    diff.append("channels")
  if diff:
    raise UserError(f"{path} does not match config.model in {', '.join(diff)}")
  if "g" not in models and "g_ema" in models:
    models["g"] = models["g_ema"]
  return models
