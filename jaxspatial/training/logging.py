"""Run outputs on process 0: ``metrics.jsonl``, TensorBoard events (tensorboardX, no
TensorFlow needed) and progress with kimg, images/s, losses and ETA (a tqdm bar on a terminal,
a plain line every 30 s otherwise: :func:`jaxspatial.cli.progress`)."""

from __future__ import annotations

import json
import pathlib
import sys
import time

import jax

from jaxspatial import cli


class MetricWriter:
  """Appends ``{"step", "kimg", "time", **metrics}`` lines and TensorBoard scalars."""

  def __init__(self, workdir: pathlib.Path):
    self.enabled = jax.process_index() == 0
    self.path = workdir / "metrics.jsonl"
    self._tb = None
    if self.enabled:
      workdir.mkdir(parents=True, exist_ok=True)
      self._tb = _summary_writer(workdir / "tensorboard")

  def write(self, step: int, metrics: dict[str, float], **extra: float) -> None:
    if not self.enabled:
      return
    row = {"step": step, **extra, **{k: float(v) for k, v in metrics.items()}}
    with self.path.open("a") as f:
      f.write(json.dumps(row) + "\n")
    for k, v in row.items():
      if k != "step":
        self._tb.add_scalar(k, v, step)
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _summary_writer(directory: pathlib.Path):
  """A tensorboardX ``SummaryWriter``, imported without torch: tensorboardX imports torch when
  it is installed (only to accept torch tensors, which we never pass), which would add torch's
  import (0.8 s and ~190 MB on an idle 2-core machine, more under load) to every training run's
  start. A process that has imported torch already keeps it."""
  hidden = "torch" not in sys.modules
  if hidden:
    sys.modules["torch"] = None        # makes ``import torch`` raise ImportError
  try:
    from tensorboardX import SummaryWriter
  finally:
    if hidden:
      del sys.modules["torch"]
  return SummaryWriter(str(directory))


class Progress:
  """Training progress on process 0 (:func:`jaxspatial.cli.progress`: a bar on a terminal,
  plain lines in a log) with kimg, images/s and the losses of the last logged step."""

  def __init__(self, total: int, batch_size: int):
    self.batch_size = batch_size
    self.bar = cli.progress(total=total, desc="train", unit="step",
                            enabled=jax.process_index() == 0)
    self._t, self._step = time.perf_counter(), 0
    self.images_per_sec = 0.0

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def start_at(self, step: int) -> None:
    """The step the run starts from, known once its checkpoint is restored (the progress
    opens before, so that its lines cover restoring)."""
    self._t, self._step = time.perf_counter(), step
    self.bar.n = self.bar.initial = step
    self.bar.refresh()

  def update(self, step: int, metrics: dict[str, float] | None = None) -> None:
    """Advances to ``step``; ``metrics`` (host values) supply the losses shown: every key that
    is or ends in ``loss`` (``d_loss``, ``g_loss``, SpatialGAN's ``align_loss``, the
    regressor's ``loss``), and the augmentation probability ``p`` of a run that augments."""
    now = time.perf_counter()
    if step > self._step:
      rate = (step - self._step) * self.batch_size / max(now - self._t, 1e-9)
      self.images_per_sec = rate
      losses = {k.replace("/", "_"): f"{float(v):.3g}" for k, v in (metrics or {}).items()
                if k.endswith("loss")}
      if metrics and "augment/p" in metrics:
        losses["p"] = f"{float(metrics['augment/p']):.3g}"
      self.bar.set_postfix(kimg=f"{step * self.batch_size / 1000:.1f}", img_s=f"{rate:.1f}",
                           **losses)
      self.bar.update(step - self._step)
    self._t, self._step = now, step

  def close(self) -> None:
    self.bar.close()
