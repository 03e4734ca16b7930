"""A newcomer's first steps after training: ``scene`` writes a real image to project (before it,
the README projected a ``scene.png`` nobody said how to get), and ``generate`` writes a grid
that can be looked at (a 32 px model's grid used to be a 138 px PNG)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxspatial import families
from jaxspatial import generate, models, scene
from jaxspatial import checkpoint
from jaxspatial.benchmarks.projection_real import held_out_indices
from jaxspatial.data.shapes import ShapesSource

RES = 16


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A 16 px StyleGAN2 directory whose config is a shapes run's (8 steps of batch 4), with
  zero variables (``scene`` reads only the config; ``generate`` only needs shapes)."""
  root = tmp_path_factory.mktemp("first_steps") / "run"
  cfg = models.stylegan2_model_config(RES, z_dim=16, w_dim=16, n_mlp=1, channel_base=128,
                                      channel_max=16)
  g = families.build_generator(cfg)
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                       jax.eval_shape(g.init, jax.random.key(0), jnp.zeros((1, 16))))
  config = ml_collections.ConfigDict({
      "model": cfg, "seed": 3, "total_steps": 8, "batch_size": 4,
      "data": {"source": "shapes", "resolution": RES, "max_objects": 4, "num_objects": 0,
               "length": 40, "seed": 0}})
  checkpoint.save_model_dir(root, {"g_ema": zeros}, config)
  return root


def test_scene_writes_the_first_held_out_scene_and_its_masks(run_dir, tmp_path, capsys):
  config = checkpoint.read_config(run_dir)
  first = held_out_indices(config, 1)[0]
  scene.main(["--checkpoint", str(run_dir), "--out", str(tmp_path / "s.png")])
  out = capsys.readouterr().out
  assert f"shapes scene {first}, {RES}x{RES}, held out" in out, out
  example = ShapesSource(RES, length=40)[first]
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "s.png")), example["image"])
  for k in range(int(example["num_objects"])):
    mask = np.asarray(Image.open(tmp_path / f"s_mask{k}.png"))
    np.testing.assert_array_equal(mask, example["masks"][k] * 255)
  assert not (tmp_path / f"s_mask{int(example['num_objects'])}.png").exists()


def test_scene_notes_an_index_the_run_trained_on(run_dir, tmp_path, capsys):
  config = checkpoint.read_config(run_dir)
  held = set(held_out_indices(config, 40))
  seen = min(set(range(40)) - held)        # 32 of the 40 scenes were drawn
  scene.main(["--checkpoint", str(run_dir), "--index", str(seen), "--out", str(tmp_path / "t.png")])
  out = capsys.readouterr().out
  assert f"note: the run trained on scene {seen}" in out and "one the run trained on" in out, out


def test_generate_enlarges_small_tiles_unless_asked_not_to(run_dir, tmp_path, capsys):
  argv = ["--checkpoint", str(run_dir), "--seeds", "0-1"]
  generate.main([*argv, "--out", str(tmp_path / "big.png")])
  assert "enlarged to 128x128" in capsys.readouterr().out
  assert Image.open(tmp_path / "big.png").size == (2 * (128 + 2) + 2, 128 + 4)
  generate.main([*argv, "--native-size", "--out", str(tmp_path / "native.png")])
  assert "enlarged" not in capsys.readouterr().out
  assert Image.open(tmp_path / "native.png").size == (2 * (RES + 2) + 2, RES + 4)
