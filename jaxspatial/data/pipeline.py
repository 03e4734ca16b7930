"""One grain input pipeline for every data source: shuffle, flip, shard, batch, resume.

:func:`make_source` turns a ``data`` config into a random-access source (``shapes``,
``folder``, ``zip`` or ``tfds``); :func:`make_iterator` builds the batched iterator the
training loop consumes. The order of examples is a pure function of the seed:

1. the *global stream*: the source is shuffled with a per-epoch permutation (grain's
   ``shuffle`` folds the epoch into its seed), repeated forever, and optionally x-flipped
   with a coin drawn from the seed and the stream position (so per example and epoch);
2. global batch ``t`` is stream positions ``[t*G, (t+1)*G)`` for the global batch size ``G``;
3. process ``p`` of ``P`` reads rows ``[p*G/P, (p+1)*G/P)`` of each global batch, i.e. only
   its own examples, so the shards are disjoint and concatenating them in process order gives
   exactly the batch a single process would see. The process count therefore never changes
   what a step trains on.

The iterator's ``get_state()`` is a small JSON-serialisable dict (store it in the checkpoint);
``set_state()`` on a fresh iterator built from the same config and seed resumes the order.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
from absl import flags

from jaxspatial.errors import UserError

SOURCES: tuple[str, ...] = ("shapes", "folder", "zip", "tfds")
_SKIPPED = "_skipped"   # batch key carrying the unreadable-file count from the workers


def default_data_config() -> ml_collections.ConfigDict:
  """The ``data`` block every model config embeds (``--config.data.KEY=VALUE``).

  Keys: ``source`` (one of :data:`SOURCES`); ``path`` (folder, .zip file, or the tfds
  data_dir, "" = tfds default); ``name``/``split``/``image_key`` (tfds); ``resolution``;
  ``xflip`` (random horizontal flips); ``num_workers`` (grain worker processes, 0 = in
  process); ``prefetch`` (batches prepared ahead by background threads, 0 = none);
  ``max_objects``/``num_objects``/``length`` (shapes: padded object slots, objects per scene
  with 0 = random 1..max_objects, virtual dataset length); ``seed`` (which shapes scenes make
  up the dataset; the shuffle order comes from the run's seed); ``lighting`` (shapes: lit
  scenes, one light direction and one horizon per scene, :mod:`jaxspatial.data.shapes`).
  """
  return ml_collections.ConfigDict({
      "source": "shapes",
      "path": "",
      "name": "",
      "split": "train",
      "image_key": "image",
      "resolution": 32,
      "xflip": False,
      "num_workers": 0,
      "prefetch": 2,
      "max_objects": 4,
      "num_objects": 0,
      "length": 1_000_000,
      "seed": 0,
      "lighting": False,
  })


def with_defaults(data_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``data_cfg`` with any key it lacks taken from :func:`default_data_config` (a run saved
  before the key existed): read a saved ``data`` section through this, not ``.get``."""
  full = default_data_config()
  full.update(data_cfg.to_dict() if isinstance(data_cfg, ml_collections.ConfigDict)
              else dict(data_cfg))
  return full


def validate_data_config(data_cfg: ml_collections.ConfigDict) -> None:
  """Raises :class:`UserError` on a bad ``data`` config, without reading any data. Keys
  missing from ``data_cfg`` take their :func:`default_data_config` values."""
  data_cfg = with_defaults(data_cfg)
  source = data_cfg.source
  if source not in SOURCES:
    raise UserError(f"unknown data.source {source!r}; choose one of {', '.join(SOURCES)}")
  if not isinstance(data_cfg.resolution, int) or data_cfg.resolution < 4:
    raise UserError(f"data.resolution must be an integer >= 4, got {data_cfg.resolution!r}")
  if data_cfg.num_workers < 0 or data_cfg.prefetch < 0:
    raise UserError("data.num_workers and data.prefetch must be >= 0")
  if source in ("folder", "zip"):
    if not data_cfg.path:
      raise UserError(f"data.source={source} needs data.path (a folder or .zip of images)")
    if not os.path.exists(data_cfg.path):
      raise UserError(f"data path {data_cfg.path} does not exist")
    if source == "zip" and not os.path.isfile(data_cfg.path):
      raise UserError(f"data.source=zip needs a .zip file, but {data_cfg.path} is a folder")
  if source == "tfds":
    if not data_cfg.name:
      raise UserError("data.source=tfds needs data.name (a tfds dataset name, e.g. 'cifar10')")
    if data_cfg.path and not os.path.isdir(data_cfg.path):
      raise UserError(f"tfds data_dir (data.path) {data_cfg.path} is not a folder")
  if source == "shapes":
    if not 1 <= data_cfg.max_objects <= 127:
      raise UserError(f"data.max_objects must be in 1..127, got {data_cfg.max_objects}")
    if not 0 <= data_cfg.num_objects <= data_cfg.max_objects:
      raise UserError(f"data.num_objects must be 0 (random) or 1..data.max_objects="
                      f"{data_cfg.max_objects}, got {data_cfg.num_objects}")
    if data_cfg.length < 1 or data_cfg.seed < 0:
      raise UserError("data.length must be positive and data.seed non-negative")


def make_source(data_cfg: ml_collections.ConfigDict) -> grain.sources.RandomAccessDataSource:
  """The random-access source a ``data`` config names (validated first; errors are
  :class:`UserError`). Examples are dicts of numpy arrays with at least ``image`` uint8
  ``(R, R, 3)``; shapes examples add ``masks``, ``centres``, ``class_ids``, ``num_objects``."""
  data_cfg = with_defaults(data_cfg)
  validate_data_config(data_cfg)
  res = data_cfg.resolution
  if data_cfg.source == "shapes":
    from jaxspatial.data.shapes import ShapesSource
    return ShapesSource(res, max_objects=data_cfg.max_objects, num_objects=data_cfg.num_objects,
                        seed=data_cfg.seed, length=data_cfg.length, lighting=data_cfg.lighting)
  if data_cfg.source in ("folder", "zip"):
    from jaxspatial.data.folder import ImageFolderSource, ZipImageSource
    cls = ZipImageSource if os.path.isfile(data_cfg.path) else ImageFolderSource
    return cls(data_cfg.path, res)
  from jaxspatial.data.tfds import TfdsSource
  return TfdsSource(data_cfg.name, resolution=res, split=data_cfg.split,
                    data_dir=data_cfg.path or None, image_key=data_cfg.image_key)


def _xflip(example: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
  """Mirrors an example left-right with probability 1/2 (image, masks and centres' x)."""
  if rng.random() >= 0.5:
    return example
  out = dict(example, image=example["image"][:, ::-1])
  if "masks" in example:
    out["masks"] = example["masks"][:, :, ::-1]
    centres = example["centres"].copy()
    centres[:, 1] = np.where(example["class_ids"] >= 0, -centres[:, 1], 0.0)
    out["centres"] = centres
  return out


def _to_model_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Stacked uint8 examples -> model inputs: ``image`` float32 ``(B, H, W, 3)`` in [-1, 1];
  shapes' ``masks`` float32 ``(B, H, W, K)`` in {0, 1} (channel-last), ``centres`` float32
  ``(B, K, 2)``, ``class_ids`` int32 ``(B, K)``, ``num_objects`` int32 ``(B,)``. Folder
  sources' per-example ``skipped`` counts travel as a scalar ``_skipped`` (the iterator
  removes it); their ``dataset.json`` labels as ``labels`` float32 ``(B, c_dim)``."""
  out = {"image": batch["image"].astype(np.float32) / np.float32(127.5) - np.float32(1.0)}
  if "label" in batch:
    out["labels"] = batch["label"].astype(np.float32)
  if "skipped" in batch:
    out[_SKIPPED] = np.int64(batch["skipped"].sum())
  if "masks" in batch:   # shapes
    out["masks"] = batch["masks"].transpose(0, 2, 3, 1).astype(np.float32)
    out["centres"] = batch["centres"].astype(np.float32)
    out["class_ids"] = batch["class_ids"].astype(np.int32)
    out["num_objects"] = batch["num_objects"].astype(np.int32)
  return out


class BatchIterator(grain.DatasetIterator):
  """Endless iterator over a ``MapDataset`` of batches whose state is the next batch number.

  ``skipped_files`` counts the unreadable files replaced in the batches this iterator has
  returned (see :mod:`jaxspatial.data.folder`), whichever worker decoded them; each jax
  process counts its own shard.

  ``get_state()`` is ``{"next_batch": n}`` (``n`` = batches consumed, the same on every
  process); ``set_state`` restarts the grain pipeline at that batch. Because the state does
  not describe grain's internals it stays valid when ``num_workers`` or ``prefetch`` change
  between runs. Works with grain's Orbax ``CheckpointHandler`` like any ``DatasetIterator``.
  """

  def __init__(self, batches: grain.MapDataset, *, prefetch: int, num_workers: int):
    super().__init__()
    self._batches = batches
    self._read_options = grain.ReadOptions(num_threads=prefetch, prefetch_buffer_size=prefetch)
    self._num_workers = num_workers
    self._next_batch = 0
    self._inner: grain.DatasetIterator | None = None
    self.skipped_files = 0

  def _ensure_started(self) -> grain.DatasetIterator:
    if self._inner is None:
      it = self._batches[self._next_batch:].to_iter_dataset(self._read_options)
      if self._num_workers > 0:
        if not flags.FLAGS.is_parsed():   # grain reads absl flags in its workers; use defaults
          flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self._num_workers))
      self._inner = iter(it)
    return self._inner

  def __next__(self) -> dict[str, np.ndarray]:
    self._assert_not_closed()
    batch = next(self._ensure_started())
    self._next_batch += 1
    self.skipped_files += int(batch.pop(_SKIPPED, 0))
    return batch

  def get_state(self) -> dict[str, int]:
    return {"next_batch": self._next_batch}

  def set_state(self, state: dict[str, Any]) -> None:
    if self._inner is not None:
      self._inner.close()
      self._inner = None
    self._next_batch = int(state["next_batch"])

  def start_prefetch(self) -> None:
    self._ensure_started().start_prefetch()

  def close(self) -> None:
    if self._inner is not None:
      self._inner.close()
      self._inner = None
    super().close()


def make_iterator(data_cfg: ml_collections.ConfigDict, *, global_batch_size: int, seed: int,
                  process_index: int | None = None,
                  process_count: int | None = None) -> BatchIterator:
  """An endless iterator of this process's share of each global batch (module docstring).

  Args:
    data_cfg: a :func:`default_data_config`-shaped config (validated; errors are
      :class:`UserError`, raised before any data is read beyond a source's listing).
    global_batch_size: ``G``, the batch across all processes.
    seed: the run's seed; sets the shuffle order and flips (non-negative).
    process_index, process_count: this process's place; default ``jax.process_index()`` and
      ``jax.process_count()``. ``G`` must be divisible by ``process_count``.

  Returns:
    a :class:`BatchIterator` yielding dicts of numpy arrays with leading dimension
    ``B = G // process_count`` as described in :func:`_to_model_batch`.
  """
  data_cfg = with_defaults(data_cfg)
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch_size < 1 or global_batch_size % process_count:
    raise UserError(f"batch_size {global_batch_size} must be a positive multiple of the "
                    f"process count {process_count}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in 0..{process_count - 1}")
  if seed < 0:
    raise UserError(f"seed must be non-negative, got {seed}")
  local = global_batch_size // process_count
  source = make_source(data_cfg)

  ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat()
  if data_cfg.xflip:
    ds = ds.random_map(_xflip)
  # Chunks of `local` consecutive stream positions; process p owns every P-th chunk.
  ds = ds.batch(local, drop_remainder=True)[process_index::process_count]
  ds = ds.map(_to_model_batch)
  return BatchIterator(ds, prefetch=data_cfg.prefetch, num_workers=data_cfg.num_workers)


def corrupt_count(iterator: BatchIterator) -> int:
  """Unreadable image files skipped so far in the batches ``iterator`` returned (for logs)."""
  return iterator.skipped_files
