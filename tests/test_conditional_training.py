"""Conditional StyleGAN2 training (stylegan2-ada's c_dim): labels from a dataset_tool
``dataset.json`` reach G's label embedding and D's label mapping, two steps train both, and
the trained run opens with js.load as a conditional model."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

import jaxspatial as js
from jaxspatial.cli import UserError
from jaxspatial.training import config_lib, loop

def tiny_config():
  return config_lib.load("stylegan2", "tiny")


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("labelled")
  (root / "00000").mkdir()
  rng = np.random.default_rng(0)
  labels = []
  for i in range(8):
    name = f"00000/img{i:08d}.png"
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / name)
    labels.append([name, i % 3])
  (root / "dataset.json").write_text(json.dumps({"labels": labels}))
  return root


def conditional_config(path, c_dim=3):
  config = tiny_config()
  config.model.c_dim = c_dim
  config.data.update(source="folder", path=str(path), prefetch=0)
  config.update(total_steps=2, checkpoint_every=2, sample_every=0)
  # R1 on both steps, no path length: one step program to compile; two devices.
  config.loss.update(r1_every=1, pl_weight=0.0)
  config.mesh.data = 2
  return config


@pytest.mark.slow
def test_two_conditional_steps(labelled_folder, tmp_path):
  config = conditional_config(labelled_folder)
  trainer = loop.Trainer(config)
  trainer.initialize()
  before = jax.device_get(trainer.state)
  loop.train(config, tmp_path / "run", trainer=trainer)
  after = jax.device_get(trainer.state)
  for net in ("g", "d"):   # the label paths received gradients
    for leaf in ("embed", "dense_1"):
      delta = np.abs(getattr(after, net)["params"]["mapping"][leaf]["weight"]
                     - getattr(before, net)["params"]["mapping"][leaf]["weight"])
      assert delta.max() > 0, (net, leaf)
  m = js.load(tmp_path / "run")
  assert m.c_dim == 3
  z = m.sample_z(0, 3)
  images = m.generate(z, labels=np.arange(3))
  assert np.isfinite(images).all()
  assert np.abs(images - m.generate(z, labels=np.array([1, 2, 0]))).max() > 0
  x = m.generate(m.sample_z(1, 4), labels=np.zeros(4, int))
  assert np.abs(m.discriminate(x, labels=np.zeros(4, int))
                - m.discriminate(x, labels=np.full(4, 2))).max() > 0


def test_conditional_model_needs_matching_labels(labelled_folder, tmp_path):
  unlabelled = conditional_config(labelled_folder)
  unlabelled.data.update(source="shapes", path="")
  with pytest.raises(UserError, match="needs labelled data"):
    config_lib.validate(unlabelled)
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
  unlabelled.data.update(source="folder", path=str(tmp_path))
  with pytest.raises(UserError, match="no dataset.json labels"):
    config_lib.validate(unlabelled)
  with pytest.raises(UserError, match="labels have 3 dimensions, model.c_dim is 5"):
    config_lib.validate(conditional_config(labelled_folder, c_dim=5))
