"""SSN's block-resampling distortion (the paper's Table 2), measured on a loaded model.

    import jaxspatial as js
    js.ssn.distortion(js.load("runs/ssn"), num_samples=256)   # {"distortion", "ci95", ...}
"""

from __future__ import annotations

import numpy as np

from jaxspatial import cli
from jaxspatial.errors import UserError
from jaxspatial.losses.distortion import block_means, pixel_distortion


def distortion(model, num_samples: int = 256, seed: int = 0,
               resample_seed: int | None = None, noise: str = "const",
               truncation: float = 1.0) -> dict[str, float]:
  """Block-resampling distortion (the paper's Table 2; its definition is ours, the paper
  gives none).

  For ``num_samples`` latents ``z_i = sample_z(seed)`` and *every* block ``a``: ``z̃`` = ``z_i``
  with block ``a`` from ``z'_i = sample_z(resample_seed)`` (default ``seed + 1``); images are
  clipped to [-1, 1] and ``d_{i,a}`` is the mean over the pixels of the blocks ``b ≠ a`` of
  :func:`jaxspatial.losses.distortion.pixel_distortion` (squared RGB distance), the quantity R_D
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
    blocks = np.asarray(block_means(pixel_distortion(x1, x0), (nh, nw)))
    keep = np.ones((nh, nw), bool)
    keep[r, c] = False
    per_block[:, a] = blocks[:, keep].mean(axis=1)
  d_i = per_block.mean(axis=1)
  std = float(np.std(d_i, ddof=1))
  return {"distortion": float(d_i.mean()), "ci95": 1.96 * std / np.sqrt(num_samples),
          "std": std, "num_samples": int(num_samples), "num_blocks": nh * nw}
