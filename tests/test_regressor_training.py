"""The latent regressor trains through the shared loop against a frozen generator, resumes,
and its checkpoint is a ready js.load(regressor_dir)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from xla_env import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "XLA_FLAGS": xla_flags(2)}


def train(config, workdir, *overrides):
  return subprocess.run([sys.executable, "-m", "jaxspatial.train", "--config", config,
                         "--workdir", str(workdir), *overrides],
                        capture_output=True, text=True, cwd=REPO, env=ENV, timeout=900)


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
  """The ``tiny`` StyleGAN2, randomly initialised and saved as a model directory: the regressor
  trains against whatever frozen generator it is given (a training run would add a minute)."""
  from jaxspatial import families
  from jaxspatial import checkpoint
  from helpers import load_config
  config = load_config("tiny")
  g = families.build_generator(config.model)
  g_vars = jax.jit(g.init)(jax.random.key(0), jnp.zeros((1, config.model.z_dim)))
  d = tmp_path_factory.mktemp("sg2")
  checkpoint.save_model_dir(d, {"g_ema": g_vars}, config)
  return d


@pytest.mark.slow
def test_train_resume_and_load(generator_dir, tmp_path):
  """2 steps, then resumed to 3, equal 3 uninterrupted steps bit for bit."""
  import jaxspatial as js
  from jaxspatial import checkpoint
  resumed, straight = tmp_path / "resumed", tmp_path / "straight"
  first = train("configs/regressor.py:tiny", resumed, f"--config.generator={generator_dir}",
                "--config.total_steps=2")
  assert first.returncode == 0, first.stderr[-2000:]
  again = train("configs/regressor.py:tiny", resumed, f"--config.generator={generator_dir}",
                "--config.total_steps=3")
  assert again.returncode == 0, again.stderr[-2000:]
  assert "resuming from step 2" in again.stdout
  once = train("configs/regressor.py:tiny", straight, f"--config.generator={generator_dir}",
               "--config.total_steps=3")
  assert once.returncode == 0, once.stderr[-2000:]
  a, b = (checkpoint.restore_models(d, 3)["e"] for d in (resumed, straight))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  e2 = checkpoint.restore_models(resumed, 2)["e"]["params"]
  assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(e2),
                                                      jax.tree.leaves(a["params"])))
  r = js.load(resumed)
  assert r.kind == "regressor" and r.step == 3
  x = js.load(generator_dir).generate(js.load(generator_dir).sample_z(0, 2))
  mask = np.ones(x.shape[:-1] + (1,), np.float32)
  assert r.invert(x, mask).shape == (2, r.num_ws, 32)
  assert r.inpaint(x, mask).shape == x.shape


def test_missing_generator_is_a_one_line_error(tmp_path):
  out = train("configs/regressor.py:tiny", tmp_path)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1].startswith("error: the regressor needs a frozen")
