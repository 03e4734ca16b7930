"""Fine-tuning an official stylegan2-ada network on a small image folder (issue 34): the shared
cfgC pickle (32 px, conv_clamp 256) converted with the ``convert_torch`` command, then StyleGAN2
``paper256`` -- its ADA on -- with ``init_from`` the converted directory, FreezeD and overrides
that match the pickle's architecture and make the run tiny (the README's "Training on your own
data" does the same from the command line).

Checked: G, G_ema and D start from the pickle (weights bit-equal to the conversion; the first
image equals the official code's output for the same z); D's frozen layers stay bit-identical
through training while the others move; ADA's p (and its accumulator) is in the checkpoint; a
run stopped after step 1 and resumed equals an uninterrupted 2-step run exactly.

R1 runs every step and path length not at all: one compiled step program. ADA starts at p 0.5
and moves 0.1 every 2 steps, so the resumed step needs the signs step 1 accumulated.
"""

import contextlib
import copy
import io
import json
import zipfile

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

import jaxspatial as js
from jaxspatial import checkpoint, convert_torch
from jaxspatial.errors import UserError
from jaxspatial.training import config_lib, loop
from parity import assert_close
from rosinality_recipe import to_nhwc

# ~35 s of CPU (three training runs, one step program): scheduled first under xdist
pytestmark = pytest.mark.slow

FREEZE_D = 2     # from_rgb and blocks_1/conv1 (the 32 px block's first conv)
FROZEN = (("from_rgb",), ("blocks_1", "conv1"))
TRAINED = (("blocks_1", "conv2"), ("blocks_2", "conv1"), ("final_dense",), ("out",))


def paper256():
  return config_lib.load("stylegan2", "paper256")


@pytest.fixture(scope="module")
def setup(reference_dir, tmp_path_factory):
  return prepare(reference_dir / "stylegan2_ada" / "cfgC", tmp_path_factory.mktemp("finetune"))


def prepare(cfg_dir, tmp):
  """(tmp, cfg_dir, config): the pickle converted into ``tmp/cfgC``, a zip of 12 PNGs and the
  fine-tuning config."""
  with contextlib.redirect_stdout(io.StringIO()):
    convert_torch.main([str(cfg_dir / "network-snapshot.pkl"), "--out", str(tmp / "cfgC")])
  rng = np.random.default_rng(0)
  with zipfile.ZipFile(tmp / "photos.zip", "w") as zf:
    for i in range(12):
      buf = io.BytesIO()
      Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(buf, "PNG")
      zf.writestr(f"photos/img{i:03d}.png", buf.getvalue())
  config = paper256()
  assert config.augment.kind == "ada"          # paper256's default, nothing asked here
  config.update_from_flattened_dict({
      "init_from": str(tmp / "cfgC"), "freeze_d": FREEZE_D,
      "data.source": "zip", "data.path": str(tmp / "photos.zip"), "data.resolution": 32,
      # the pickle's architecture (convert_torch's summary line says it)
      "model.resolution": 32, "model.z_dim": 32, "model.w_dim": 32, "model.n_mlp": 2,
      "model.channel_base": 1024, "model.channel_max": 64, "model.conv_clamp": 256,
      "model.mbstd_group_size": 4,
      # tiny: 8 images a step (8 simulated devices), 1 of them used
      "batch_size": 8, "mesh.data": 1, "total_steps": 2, "log_every": 1,
      "checkpoint_every": 0, "sample_every": 0, "num_samples": 4,
      "loss.r1_every": 1, "loss.pl_weight": 0.0,
      "augment.p": 0.5, "augment.interval": 2, "augment.speed_kimg": 0.16})
  return tmp, cfg_dir, config


@pytest.fixture(scope="module")
def runs(setup):
  """(trainer, the state's models at step 0, the uninterrupted workdir, the interrupted and
  resumed one). The run stopped after step 1 and the uninterrupted one share a trainer (each
  ``train`` initialises it afresh; one compilation); the resumed run builds its own, as a new
  process would, and restores everything from the checkpoint."""
  tmp, _, config = setup
  trainer = loop.make_trainer(copy.deepcopy(config))
  trainer.initialize()
  start = jax.device_get({"g": trainer.state.g, "g_ema": trainer.state.g_ema,
                          "d": trainer.state.d})
  trainer.config.total_steps = 1
  loop.train(trainer.config, tmp / "resumed", trainer=trainer)     # stopped after step 1
  trainer.config.total_steps = config.total_steps
  loop.train(trainer.config, tmp / "straight", trainer=trainer)
  loop.train(copy.deepcopy(config), tmp / "resumed")               # resumes at step 1
  return trainer, start, tmp / "straight", tmp / "resumed"


def saved_train(workdir, step=2):
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(checkpoint.checkpoint_root(workdir) / str(step) / "train")


def metrics(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def subtree(tree, keys):
  for k in keys:
    tree = tree[k]
  return tree


def test_training_starts_from_the_pickle(setup, runs):
  """Step 0 holds the converted G, G_ema and D bit for bit, and renders the official G_ema's
  image for the pickle's test z (noise 'const', psi 1) at the parity tolerance (1e-4 of the
  image's scale, test_stylegan2_ada)."""
  tmp, cfg_dir, _ = setup
  trainer, start, _, _ = runs
  converted = checkpoint.restore_models(tmp / "cfgC")
  for name in ("g", "g_ema", "d"):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(converted[name]), start[name])
  z = np.load(cfg_dir / "inputs.npz")["z"]
  official = to_nhwc(np.load(cfg_dir / "outputs.npz")["img_const_psi1"])
  trainer.state = trainer.state.replace(g_ema=start["g_ema"])
  first = trainer.samples({"z": z, "z_mix": z})
  assert_close("first image", first, official)


def test_the_first_discriminator_layers_stay_frozen(setup, runs):
  tmp, _, _ = setup
  before = checkpoint.restore_models(tmp / "cfgC")["d"]["params"]
  after = checkpoint.restore_models(runs[2])["d"]["params"]
  for keys in FROZEN:
    jax.tree.map(np.testing.assert_array_equal, subtree(before, keys), subtree(after, keys))
  for keys in TRAINED:
    assert all(not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(subtree(before, keys)), jax.tree.leaves(subtree(after, keys)))), keys
  g_before = checkpoint.restore_models(tmp / "cfgC")["g"]["params"]
  g_after = checkpoint.restore_models(runs[2])["g"]["params"]
  assert not np.array_equal(g_before["synthesis"]["const"], g_after["synthesis"]["const"])


def test_ada_p_is_in_the_checkpoint(runs):
  """p moved (0.5 -> 0.4 after step 2: the pickle's D calls every real image fake, r_t = -1 <
  0.6) and the checkpoint holds the p the log shows after the last step."""
  straight = runs[2]
  p = [r["augment/p"] for r in metrics(straight)]
  assert p == pytest.approx([0.5, 0.4])
  augment = saved_train(straight)["augment"]
  assert float(augment["p"]) == p[-1]
  assert float(augment["sign_count"]) == 0.0      # an update step empties the accumulator
  assert js.load(straight).step == 2


def test_resume_equals_the_uninterrupted_run(runs):
  """Exact: the same compiled step on the same data and keys, from a state restored bit for
  bit (parameters, optimiser moments, p and the 3rd step's pending signs)."""
  _, _, straight, resumed = runs
  assert [r["step"] for r in metrics(resumed)] == [1, 2]
  a, b = checkpoint.restore_models(straight), checkpoint.restore_models(resumed)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  jax.tree.map(np.testing.assert_array_equal, saved_train(straight), saved_train(resumed))
  keys = ("augment/p", "augment/r_t", "augment/signs_counted", "d_loss", "g_loss")
  assert [[r[k] for k in keys] for r in metrics(straight)] == \
      [[r[k] for k in keys] for r in metrics(resumed)]
  # step 2 counts its own 16 signs (D's pass and R1's) and the 16 step 1 left pending
  assert [r["augment/signs_counted"] for r in metrics(resumed)] == [16, 32]


def test_a_config_that_computes_another_network_is_refused(setup, tmp_path):
  """Without ``conv_clamp`` 256 the pickle's weights would load (same shapes) into a network
  without the clamp: one line naming the flag, before any step."""
  _, _, config = setup
  config = copy.deepcopy(config)
  config.model.conv_clamp = None
  with pytest.raises(UserError, match=r"built with conv_clamp=256, config.model has conv_clamp=None.*"
                           r"give --config.model.conv_clamp=256"):
    loop.make_trainer(config).initialize()
