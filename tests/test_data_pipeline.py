"""The grain pipeline: batch layout, seeded order, resume from state, per-process shards, x-flip."""

import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxspatial.cli import UserError
from jaxspatial.data.pipeline import corrupt_count, default_data_config, make_iterator, make_source


def _cfg(**overrides):
  cfg = default_data_config()
  cfg.resolution, cfg.max_objects, cfg.prefetch = 16, 3, 0
  cfg.update(overrides)
  return cfg


def _take(cfg, n, *, batch=8, seed=0, process_index=0, process_count=1, state=None):
  it = make_iterator(cfg, global_batch_size=batch, seed=seed, process_index=process_index,
                     process_count=process_count)
  if state is not None:
    it.set_state(state)
  out = [next(it) for _ in range(n)]
  it.close()
  return out


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_batch_layout_dtypes_and_ranges():
  (batch,) = _take(_cfg(), 1)
  assert batch["image"].shape == (8, 16, 16, 3) and batch["image"].dtype == np.float32
  assert -1 <= batch["image"].min() < 0 < batch["image"].max() <= 1
  assert batch["masks"].shape == (8, 16, 16, 3) and batch["masks"].dtype == np.float32
  assert set(np.unique(batch["masks"])) <= {0.0, 1.0}
  assert batch["centres"].shape == (8, 3, 2) and batch["centres"].dtype == np.float32
  assert batch["class_ids"].shape == (8, 3) and batch["class_ids"].dtype == np.int32
  assert batch["num_objects"].shape == (8,) and batch["num_objects"].dtype == np.int32
  # Channel k of the masks holds object k: non-empty exactly for the real objects.
  present = batch["masks"].sum(axis=(1, 2)) > 0
  np.testing.assert_array_equal(present, np.arange(3) < batch["num_objects"][:, None])
  np.testing.assert_array_equal(present, batch["class_ids"] >= 0)


def test_same_seed_same_batches_different_seed_different():
  a, b, c = _take(_cfg(), 2, seed=1), _take(_cfg(), 2, seed=1), _take(_cfg(), 2, seed=2)
  for x, y in zip(a, b):
    _assert_batches_equal(x, y)
  assert not np.array_equal(a[0]["image"], c[0]["image"])
  # By default the process place comes from jax (one process here).
  it = make_iterator(_cfg(), global_batch_size=8, seed=1)
  _assert_batches_equal(next(it), a[0])
  it.close()


def test_state_restores_the_same_order_in_a_fresh_iterator():
  cfg = _cfg()
  it = make_iterator(cfg, global_batch_size=8, seed=3, process_index=0, process_count=1)
  first = next(it)
  state = json.loads(json.dumps(it.get_state()))
  rest = [next(it), next(it)]
  it.close()
  resumed = _take(cfg, 2, seed=3, state=state)
  for x, y in zip(rest, resumed):
    _assert_batches_equal(x, y)
  assert not np.array_equal(first["image"], resumed[0]["image"])


def test_process_shards_are_disjoint_and_concatenate_to_the_global_batch():
  cfg = _cfg()
  whole = _take(cfg, 3, batch=8)
  shards = [_take(cfg, 3, batch=8, process_index=p, process_count=4) for p in range(4)]
  for step in range(3):
    parts = [s[step] for s in shards]
    assert all(p["image"].shape[0] == 2 for p in parts)
    for key in whole[step]:
      np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[step][key])
    images = {p["image"][i].tobytes() for p in parts for i in range(2)}
    assert len(images) == 8, "shards overlap"
  with pytest.raises(UserError, match="multiple of the process count"):
    make_iterator(cfg, global_batch_size=6, seed=0, process_index=0, process_count=4)


def test_every_epoch_is_a_new_permutation():
  cfg = _cfg(length=6)
  batches = _take(cfg, 4, batch=3)
  epochs = [np.concatenate([b["image"] for b in batches[e:e + 2]]) for e in (0, 2)]
  keys = [[x.tobytes() for x in epoch] for epoch in epochs]
  assert sorted(keys[0]) == sorted(keys[1]) and len(set(keys[0])) == 6
  assert keys[0] != keys[1]


def test_xflip_mirrors_image_masks_and_centres_together():
  plain = _take(_cfg(), 2, seed=5)
  flipped = _take(_cfg(xflip=True), 2, seed=5)
  kinds = []
  for p, f in zip(plain, flipped):
    for i in range(8):
      if np.array_equal(p["image"][i], f["image"][i]):
        kinds.append("same")
        np.testing.assert_array_equal(p["centres"][i], f["centres"][i])
        continue
      kinds.append("flipped")
      np.testing.assert_array_equal(p["image"][i][:, ::-1], f["image"][i])
      np.testing.assert_array_equal(p["masks"][i][:, ::-1], f["masks"][i])
      np.testing.assert_array_equal(p["centres"][i][:, 0], f["centres"][i][:, 0])
      np.testing.assert_array_equal(-p["centres"][i][:, 1], f["centres"][i][:, 1])
      np.testing.assert_array_equal(p["class_ids"][i], f["class_ids"][i])
  assert {"same", "flipped"} == set(kinds)
  again = _take(_cfg(xflip=True), 2, seed=5)
  for x, y in zip(flipped, again):
    _assert_batches_equal(x, y)


def test_folder_source_through_the_pipeline_counts_corrupt_files(tmp_path):
  rng = np.random.default_rng(0)
  for i in range(5):
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
  (tmp_path / "5.png").write_bytes(b"garbage")
  cfg = _cfg(source="folder", path=str(tmp_path), xflip=True, num_workers=0)
  it = make_iterator(cfg, global_batch_size=3, seed=0, process_index=0, process_count=1)
  batches = [next(it) for _ in range(4)]   # two epochs of 6 files
  it.close()
  assert all(set(b) == {"image"} and b["image"].shape == (3, 16, 16, 3) for b in batches)
  assert corrupt_count(it) == 2            # the garbage file came up once per epoch


def test_configs_without_the_optional_keys_get_the_defaults():
  cfg = ml_collections.ConfigDict(dict(source="shapes", resolution=16, xflip=False,
                                       num_workers=0, max_objects=2, num_objects=0))
  (batch,) = _take(cfg, 1, batch=2)
  assert batch["masks"].shape == (2, 16, 16, 2)


def test_worker_processes_give_the_same_batches_and_portable_state():
  cfg = _cfg()
  reference = _take(cfg, 3, seed=4, process_index=1, process_count=2)
  it = make_iterator(_cfg(num_workers=1, prefetch=2), global_batch_size=8, seed=4,
                     process_index=1, process_count=2)
  first = next(it)
  state = it.get_state()
  it.close()
  _assert_batches_equal(first, reference[0])
  resumed = _take(cfg, 2, seed=4, process_index=1, process_count=2, state=state)
  for x, y in zip(resumed, reference[1:]):
    _assert_batches_equal(x, y)


@pytest.mark.parametrize("overrides, message", [
    ({"source": "webdataset"}, "unknown data.source"),
    ({"source": "folder"}, "needs data.path"),
    ({"source": "folder", "path": "/no/such/dir"}, "does not exist"),
    ({"source": "tfds"}, "needs data.name"),
    ({"num_objects": 4}, "num_objects"),
    ({"resolution": 2}, "resolution"),
])
def test_bad_configs_fail_before_reading_data(overrides, message):
  with pytest.raises(UserError, match=message):
    make_source(_cfg(**overrides))
