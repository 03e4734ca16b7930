"""The GAN training system: sharded step = single-device step, resume = uninterrupted run,
lazy regularisation schedule and corrections, EMA half-life, config validation."""

import copy
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial.cli import UserError
from jaxspatial.training import config_lib, loop
from jaxspatial.training import state as state_lib
from helpers import REPO, batches, load_config, run_steps
from xla_env import xla_flags

@pytest.fixture(scope="module")
def tiny():
  return load_config("tiny")


# ADA with p moving by 0.1 after every 3rd step (8 * 3 images / 240), from 0.5: the training
# tests below check augmentation, its sign statistics and their resume on the tiny model.
ADA = {"augment.kind": "ada", "augment.p": 0.5, "augment.interval": 3, "augment.speed_kimg": 0.24}


@pytest.fixture(scope="module")
def single_and_sharded(tiny):
  config = copy.deepcopy(tiny)
  config.update_from_flattened_dict({**ADA, "freeze_d": 2})   # from_rgb, blocks_1/conv1 frozen
  data = batches(config, 4)
  return run_steps(config, 1, data), run_steps(config, 8, data)


@pytest.mark.slow
def test_sharded_step_equals_single_device(single_and_sharded):
  """8-device data-parallel steps reproduce 1-device steps (same global batch and seed).

  Tolerance 1e-4 relative and absolute: the two differ only in float32 reduction order
  (all-reduce of per-device gradient partial sums). Adam divides each gradient by its own
  running scale, so for a parameter whose gradient is near zero that rounding difference
  becomes up to a few 1e-5 after 4 steps; a real bug (a wrong shard, a missing update)
  moves parameters by ~lr = 2.5e-3 per step.
  """
  (one, h1), (eight, h8) = single_and_sharded
  assert len(eight.mesh.devices.flat) == 8
  p1 = jax.tree.leaves(jax.device_get(one.state.g_ema["params"]))
  p8 = jax.tree.leaves(jax.device_get(eight.state.g_ema["params"]))
  for a, b in zip(p1, p8):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  for a, b in zip(jax.tree.leaves(jax.device_get(one.state.d)),
                  jax.tree.leaves(jax.device_get(eight.state.d))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(h1[-1]["d_loss"], h8[-1]["d_loss"], rtol=1e-4)
  for key in ("augment/p", "augment/r_t", "augment/signs_counted"):   # reduced over devices
    assert [m[key] for m in h1] == [m[key] for m in h8], key
  # Parameters moved: the test would not pass on a no-op step.
  p0 = jax.tree.leaves(jax.device_get(jax.jit(lambda: one._init(jax.random.key(0)))().d))
  assert any(not np.allclose(a, b) for a, b in zip(p0, jax.tree.leaves(jax.device_get(one.state.d))))


@pytest.mark.slow
def test_lazy_regularisation_schedule(single_and_sharded, tiny):
  """R1 runs on steps with step % r1_every == 0, path length on step % pl_every == 0."""
  (_, history), _ = single_and_sharded
  for step, m in enumerate(history):
    assert m["r1_applied"] == float(step % tiny.loss.r1_every == 0)
    assert m["pl_applied"] == float(step % tiny.loss.pl_every == 0)
    assert (m["r1_penalty"] > 0) == bool(m["r1_applied"])
    assert (m["pl_penalty"] > 0) == bool(m["pl_applied"])


def test_ada_p_follows_the_sign_of_the_real_logits(single_and_sharded, tiny):
  """p moves after every ``interval`` steps by sign(r_t - target) * batch * interval /
  speed_kimg, r_t the mean sign since the last move, counting R1's second real pass."""
  from jaxspatial.training.augment import ada_adjust
  (_, history), _ = single_and_sharded
  b = tiny.batch_size
  assert [m["augment/signs_counted"] for m in history] == [2 * b, 3 * b, 5 * b, b]
  p = [m["augment/p"] for m in history]
  r_t, count = history[2]["augment/r_t"], history[2]["augment/signs_counted"]
  moved = float(ada_adjust(0.5, round(r_t * count), count, 0.6, b, 3, 0.24))
  assert p == [0.5, 0.5, moved, moved] and abs(moved - 0.5) == pytest.approx(0.1)


def test_freeze_d_counts_layers_as_stylegan2_ada(tiny):
  from jaxspatial.training import gan_step
  trainer = loop.Trainer(copy.deepcopy(tiny))
  params = trainer.abstract_state.d["params"]

  def frozen(n):
    mask = gan_step.frozen_discriminator_layers(params, n)
    return sorted({"/".join(str(k.key) for k in path[:2]) if path[0].key.startswith("blocks")
                   else path[0].key
                   for path, f in jax.tree_util.tree_leaves_with_path(mask) if f})
  assert frozen(0) == []
  assert frozen(1) == ["from_rgb"]
  assert frozen(5) == ["blocks_1/conv1", "blocks_1/conv2", "blocks_1/skip", "blocks_2/conv1",
                       "from_rgb"]
  assert "final_dense" not in frozen(100) and "out" not in frozen(100)


@pytest.mark.slow
def test_freeze_d_leaves_the_frozen_layers_untrained(single_and_sharded):
  """freeze_d=2 in the fixture: from_rgb and blocks_1/conv1 keep their initial values (also
  through R1's update), the layers after them train."""
  (one, _), _ = single_and_sharded
  d0 = jax.device_get(jax.jit(lambda: one._init(jax.random.key(0)))().d["params"])
  d = jax.device_get(one.state.d["params"])
  for a, b in zip(jax.tree.leaves([d0["from_rgb"], d0["blocks_1"]["conv1"]]),
                  jax.tree.leaves([d["from_rgb"], d["blocks_1"]["conv1"]])):
    np.testing.assert_array_equal(a, b)
  assert not np.allclose(d0["blocks_1"]["conv2"]["weight"], d["blocks_1"]["conv2"]["weight"])


def test_lazy_regularisation_corrects_lr_and_betas():
  config = load_config("paper256")
  opt_g, opt_d = state_lib.make_optimizers(config)
  ratio_g, ratio_d = 4 / 5, 16 / 17
  params = {"w": jnp.ones(())}
  for opt, ratio in ((opt_g, ratio_g), (opt_d, ratio_d)):
    # One Adam step from zero moments moves by lr*ratio * g/|g| (bias-corrected).
    state = opt.init(params)
    updates, state = opt.update({"w": jnp.full((), 3.0)}, state, params)
    np.testing.assert_allclose(updates["w"], -0.0025 * ratio, rtol=1e-5)
    # Second step exposes beta1 = 0 ** ratio = 0 and beta2 = 0.99 ** ratio.
    updates, _ = opt.update({"w": jnp.full((), 1.0)}, state, params)
    b2 = 0.99 ** ratio
    v = (b2 * (1 - b2) * 9.0 + (1 - b2) * 1.0) / (1 - b2 ** 2)
    np.testing.assert_allclose(updates["w"], -0.0025 * ratio * 1.0 / (np.sqrt(v) + 1e-8),
                               rtol=1e-4)
  assert state_lib.lazy_regularization_ratio(16, enabled=False) == 1.0


def test_ema_half_life_independent_of_devices():
  """beta depends on the global batch only; 20 kimg half-life at batch 64."""
  config = load_config("paper256")
  beta = float(state_lib.ema_beta(config, jnp.asarray(1000)))
  steps_to_half = np.log(0.5) / np.log(beta)
  np.testing.assert_allclose(steps_to_half * config.batch_size, 20_000, rtol=1e-4)
  config.ema_rampup = 0.05
  early = float(state_lib.ema_beta(config, jnp.asarray(0)))
  np.testing.assert_allclose(np.log(0.5) / np.log(early) * 64, 0.05 * 64, rtol=1e-4)


@pytest.mark.slow
def test_ema_equals_a_numpy_recomputation_from_the_parameter_history(single_and_sharded, tiny):
  """G_ema after 4 steps, on 1 and on 8 devices, is the EMA of the recorded G parameters:
  ema_0 = G_0, ema_t = G_t + beta_t (ema_{t-1} - G_t), beta_t = 0.5 ** (B / min(ema_kimg *
  1000, (t + 1) B ema_rampup)) (stylegan2-ada), recomputed here in float64."""
  b = tiny.batch_size
  for trainer, _ in single_and_sharded:
    history = trainer.g_params_history
    ema = jax.tree.map(lambda a: np.asarray(a, np.float64), history[0])
    for t, g in enumerate(history[1:]):
      nimg = tiny.ema_kimg * 1000.0
      if tiny.ema_rampup:
        nimg = min(nimg, (t + 1) * b * tiny.ema_rampup)
      beta = 0.5 ** (b / max(nimg, 1e-8))
      ema = jax.tree.map(lambda e, g: g + beta * (e - g), ema, g)
    got = jax.device_get(trainer.state.g_ema["params"])
    for want, have in zip(jax.tree.leaves(ema), jax.tree.leaves(got)):
      np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
    moved = [np.abs(a - c).max() for a, c in zip(jax.tree.leaves(history[0]),
                                                jax.tree.leaves(got))]
    assert max(moved) > 1e-4   # the EMA moved: a copy of G_0 would not pass


@pytest.mark.parametrize("override,message", [
    ({"batch_size": 12}, "not divisible by the 8 devices"),
    ({"model.resolution": 24}, "power of two"),
    ({"data.resolution": 32}, "differs from model.resolution"),
    ({"data.source": "folder"}, "needs data.path"),
    ({"data.source": "imagenet"}, "unknown data.source"),
    ({"augment.kind": "adaptive"}, "augment.kind must be one of"),
    ({"augment.spec": "bgcfnc"}, "augment.spec must be one of"),
    ({"augment.interval": 0}, "interval >= 1"),
    ({"freeze_d": -1}, "freeze_d must be >= 0"),
])
def test_invalid_configs_fail_before_compiling(tiny, override, message):
  config = copy.deepcopy(tiny)
  config.update_from_flattened_dict(override)
  with pytest.raises(UserError, match=message):
    config_lib.validate(config, num_devices=8)


def _train(workdir, *overrides, timeout=600):
  return subprocess.run(
      [sys.executable, "-m", "jaxspatial.train", "--config", "configs/stylegan2.py:tiny",
       "--workdir", str(workdir), *overrides],
      capture_output=True, text=True, cwd=REPO, timeout=timeout,
      env={**os.environ, "XLA_FLAGS": xla_flags(2)})


@pytest.fixture(scope="module")
def straight_and_resumed(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("resume")
  # R1 every 3 steps (on 0 and 3), so a resumed run that lost its place in the lazy-
  # regularisation schedule (R1 on its own first step, 2) could not match the straight one.
  # Path length off: two step programs to compile instead of four.
  # ADA updates p after step 3 (indices 0..2): the resumed run needs the accumulated signs.
  common = ("--config.checkpoint_every=0", "--config.loss.r1_every=3",
            "--config.loss.pl_weight=0", *(f"--config.{k}={v}" for k, v in ADA.items()))
  straight = _train(tmp / "straight", "--config.total_steps=4", *common)
  assert straight.returncode == 0, straight.stderr[-2000:]
  first = _train(tmp / "resumed", "--config.total_steps=2", *common)
  assert first.returncode == 0, first.stderr[-2000:]
  second = _train(tmp / "resumed", "--config.total_steps=4", *common)
  assert second.returncode == 0, second.stderr[-2000:]
  assert "resuming from step 2" in second.stdout
  return tmp / "straight", tmp / "resumed"


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(straight_and_resumed):
  from jaxspatial import checkpoint
  a, b = (checkpoint.restore_models(d, 4) for d in straight_and_resumed)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_resume_sees_the_same_data_order(straight_and_resumed):
  rows = [[json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
          for d in straight_and_resumed]
  assert [r["step"] for r in rows[1]] == [1, 2, 3, 4]
  for r1, r2 in zip(*rows):     # same data and keys -> identical losses at every step
    assert r1["d_loss"] == r2["d_loss"] and r1["scores/real"] == r2["scores/real"]
  assert [r["r1_applied"] for r in rows[1]] == [1.0, 0.0, 0.0, 1.0]   # logged after steps 0..3


@pytest.mark.slow
def test_resume_keeps_the_ada_state(straight_and_resumed):
  """p, its sign accumulator and the image count survive the restart: the killed-and-resumed
  run's p trajectory is the uninterrupted one's, and p moved in the resumed part."""
  rows = [[json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
          for d in straight_and_resumed]
  keys = ("augment/p", "augment/r_t", "augment/signs_counted", "kimg")
  assert [[r[k] for k in keys] for r in rows[0]] == [[r[k] for k in keys] for r in rows[1]]
  assert [r["augment/signs_counted"] for r in rows[1]] == [16, 24, 32, 16]
  p = [r["augment/p"] for r in rows[1]]
  assert p[:2] == [0.5, 0.5] and abs(p[2] - 0.5) == pytest.approx(0.1) and p[3] == p[2]


def test_a_checkpoint_from_before_ada_restores_with_a_fresh_augment_state(tiny, tmp_path):
  """A checkpoint whose train item has no ``augment`` (saved before ADA existed) resumes with
  p = augment.p and an empty sign accumulator instead of failing to restore."""
  from jaxspatial import checkpoint
  config = copy.deepcopy(tiny)
  config.update_from_flattened_dict({**ADA, "mesh.data": 1})
  trainer = loop.Trainer(config)
  trainer.initialize()
  s = trainer.state
  mngr = checkpoint.manager(tmp_path, async_save=False)
  mngr.save(0, args=checkpoint.save_args(
      models={"g": s.g, "g_ema": s.g_ema, "d": s.d}, config=config,
      train={"step": s.step, "opt_g": s.opt_g, "opt_d": s.opt_d, "pl_mean": s.pl_mean}))
  restored = loop.Trainer(config)
  restored.restore(mngr, 0)
  mngr.close()
  assert jax.device_get(restored.state.augment) == {"p": 0.5, "sign_sum": 0.0, "sign_count": 0.0}


def assert_close_to_scale(actual, desired, rtol=1e-6):
  """|actual - desired| <= rtol * max|desired| elementwise: the two sides round differently (XLA
  fuses a flat and a per-array Adam differently), by ~1 ulp of an update, which is a large
  relative error for a parameter that happens to be near zero but not at its array's scale."""
  desired = np.asarray(desired)
  np.testing.assert_allclose(actual, desired, rtol=0, atol=rtol * np.abs(desired).max())


def test_flat_adam_updates_equal_per_leaf_adam(tiny):
  """make_optimizers' Adam over one vector gives every parameter the update one Adam per
  parameter array gives (optax.adam, the layout before): 3 steps of D's optimiser with
  FreezeD's mask and a NaN/Inf in the gradients, params and moments within 1e-6."""
  from jaxspatial.training import gan_step
  config = copy.deepcopy(tiny)
  params = loop.Trainer(config).abstract_state.d["params"]
  keys = iter(jax.random.split(jax.random.key(0), 100))
  params = jax.tree.map(lambda x: jax.random.normal(next(keys), x.shape), params)
  frozen = gan_step.frozen_discriminator_layers(params, 2)
  grads = [jax.tree.map(lambda x: jax.random.normal(next(keys), x.shape), params)
           for _ in range(3)]
  grads[1]["out"]["bias"] = jnp.array([np.nan])
  grads[2]["final_dense"]["bias"] = grads[2]["final_dense"]["bias"].at[0].set(np.inf)
  (_, flat), (_, per_leaf) = (state_lib.make_optimizers(config, per_leaf=p)
                              for p in (False, True))
  runs = []
  for opt in (flat, per_leaf):
    step = jax.jit(lambda p, s, g: gan_step._adam_step(opt, p, s, g, frozen))
    p, s = params, opt.init(params)
    for g in grads:
      p, s = step(p, s, g)
    runs.append((p, s))
  (p_flat, s_flat), (p_leaf, s_leaf) = runs
  assert s_flat[0].mu.shape == (sum(x.size for x in jax.tree.leaves(params)),)
  for a, b in zip(jax.tree.leaves((p_flat, s_flat)),
                  jax.tree.leaves((p_leaf, state_lib.flat_optimizer_state(s_leaf)))):
    assert_close_to_scale(a, b)
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p_flat))]
  assert max(moved) > 1e-3 and min(moved) == 0.0     # trained, frozen layers kept


PER_LEAF_CHECKPOINT = os.path.join(REPO, "tests", "data", "tiny_adam_per_leaf")


def test_a_per_leaf_adam_checkpoint_restores_into_the_flat_layout_and_resumes():
  """A checkpoint written before the flat optimiser layout (tests/data/README.md: ADA p = 0.5
  with its sign accumulator, FreezeD) restores, through the layout conversion, into the state
  built by hand from its files (Orbax's raw arrays; each moment array looked up by its
  parameter's path and concatenated in the parameters' order), and one step from each gives
  the same parameters; with test_flat_adam_updates_equal_per_leaf_adam, training goes on as
  the per-leaf optimiser would have. js.load still reads it (its G_ema). The step is the plain
  phase: it runs both optimisers and compiles in ~60 % of the CPU time of step 2's R1 +
  path-length phase."""
  import functools
  import operator
  import optax
  import orbax.checkpoint as ocp
  import jaxspatial as js
  from jaxspatial import checkpoint
  from jaxspatial.training import gan_step
  config = checkpoint.read_config(PER_LEAF_CHECKPOINT)
  trainer = loop.Trainer(config)
  mngr = checkpoint.manager(PER_LEAF_CHECKPOINT, read_only=True)
  trainer.restore(mngr, 2)
  mngr.close()

  with ocp.StandardCheckpointer() as ckptr:
    raw = ckptr.restore(os.path.join(PER_LEAF_CHECKPOINT, "checkpoints", "2", "train"))
  models = jax.device_get(checkpoint.restore_models(PER_LEAF_CHECKPOINT))

  def by_hand(saved, params):
    paths = [tuple(k.key for k in p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    moment = lambda m: np.concatenate(
        [np.ravel(functools.reduce(operator.getitem, path, saved[0][m])) for path in paths])
    adam = optax.ScaleByAdamState(saved[0]["count"], moment("mu"), moment("nu"))
    return adam, optax.EmptyState()
  hand = jax.device_put(state_lib.GANState(
      step=raw["step"], g=models["g"], g_ema=models["g_ema"], d=models["d"],
      opt_g=by_hand(raw["opt_g"], models["g"]["params"]),
      opt_d=by_hand(raw["opt_d"], models["d"]["params"]),
      pl_mean=raw["pl_mean"], augment=raw["augment"]), trainer.state_sharding)
  assert float(hand.augment["p"]) == 0.5 and float(hand.augment["sign_count"]) > 0
  for x, y in zip(jax.tree.leaves(trainer.state), jax.tree.leaves(hand)):
    np.testing.assert_array_equal(x, y)

  step = trainer.compiled_step(gan_step.Phase(r1=False, path_length=False))
  batch = trainer.global_batch(batches(config, 1)[0])
  resumed, _ = step(trainer.state, batch)
  by_hand_step, _ = step(hand, batch)
  for x, y in zip(jax.tree.leaves(resumed), jax.tree.leaves(by_hand_step)):
    np.testing.assert_array_equal(x, y)
  assert int(resumed.step) == 3 and not np.allclose(resumed.d["params"]["out"]["weight"],
                                                    models["d"]["params"]["out"]["weight"])
  model = js.load(PER_LEAF_CHECKPOINT)     # the models item: the layout never touched it
  assert model.step == 2
  for x, y in zip(jax.tree.leaves(model.g_vars), jax.tree.leaves(models["g_ema"])):
    np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_sigterm_leaves_a_restorable_checkpoint(tmp_path):
  import jaxspatial as js
  proc = subprocess.Popen(
      [sys.executable, "-m", "jaxspatial.train", "--config", "configs/stylegan2.py:tiny",
       "--workdir", str(tmp_path), "--config.total_steps=100000", "--config.checkpoint_every=0",
       "--config.log_every=1"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**os.environ, "XLA_FLAGS": xla_flags(1)})
  metrics = tmp_path / "metrics.jsonl"
  try:
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists()
                                          and len(metrics.read_text().splitlines()) >= 3):
      time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
  finally:   # never leave a 100000-step run behind
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  assert proc.returncode == 0, err[-2000:]
  assert "preempted at step" in out
  rows = [json.loads(line) for line in metrics.read_text().splitlines()]
  # Without augmentation the overfitting heuristic r_t is still logged (ADA's p is not).
  assert all(-1 <= r["augment/r_t"] <= 1 and "augment/p" not in r for r in rows)
  m = js.load(tmp_path)
  assert m.step >= 3
  assert m.generate(m.sample_z(0, 2)).shape == (2, 16, 16, 3)


@pytest.mark.slow
def test_init_from_a_checkpoint_starts_from_its_weights(straight_and_resumed, tiny):
  """Fine-tuning: G, G_ema and D start from the checkpoint; a mismatched model fails."""
  from jaxspatial import checkpoint
  source = straight_and_resumed[0]
  config = copy.deepcopy(tiny)
  config.mesh.data = 1
  config.init_from = str(source)
  trainer = loop.Trainer(config)
  trainer.initialize()
  saved = checkpoint.restore_models(source)
  for name in ("g", "g_ema", "d"):
    for a, b in zip(jax.tree.leaves(saved[name]),
                    jax.tree.leaves(jax.device_get(getattr(trainer.state, name)))):
      np.testing.assert_array_equal(a, b)
  assert int(trainer.state.step) == 0
  config.model.w_dim = config.model.z_dim = 16
  with pytest.raises(UserError, match=r"does not match config.model \(checkpoint has "
                                      r"w_dim=32, config 16; z_dim=32, config 16\)"):
    loop.Trainer(config).initialize()


@pytest.mark.slow
def test_checkpoint_from_two_devices_loads_on_one(straight_and_resumed):
  code = ("import jaxspatial as js, sys; m = js.load(sys.argv[1]); "
          "print(m.step, m.generate(m.sample_z(0, 2)).shape)")
  out = subprocess.run([sys.executable, "-c", code, str(straight_and_resumed[0])],
                       capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "XLA_FLAGS": xla_flags(1)})
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["4", "(2,", "16,", "16,", "3)"]
  assert out.stderr == ""


@pytest.mark.parametrize("args,message", [
    (["--config", "configs/nope.py"], "No such file"),
    (["--config", "configs/stylegan2.py:huge"], "unknown preset 'huge'"),
    (["--config", "configs/stylegan2.py:tiny", "--config.nokey=3"], "no such config key"),
    (["--config", "configs/stylegan2.py:tiny", "--config.batch_size=abc"], "invalid literal"),
    (["--config", "configs/stylegan2.py:tiny", "--config.data.source=folder"], "needs data.path"),
])
def test_train_command_line_errors_are_one_line(args, message, tmp_path):
  out = subprocess.run([sys.executable, "-m", "jaxspatial.train", *args, "--workdir",
                        str(tmp_path)], capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 2
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr




def test_compile_cache_is_on_by_default_and_defers_to_jax_settings(tmp_path):
  from jaxspatial.training import compile_cache
  assert load_config("tiny").compile_cache_dir == compile_cache.DEFAULT_DIR
  keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
  saved = {k: getattr(jax.config, k) for k in keys}
  try:
    jax.config.update("jax_compilation_cache_dir", None)     # as in a fresh process
    assert compile_cache.enable("") is None and jax.config.jax_compilation_cache_dir is None
    target = str(tmp_path / "xla")
    assert compile_cache.enable(target) == target == jax.config.jax_compilation_cache_dir
    assert compile_cache.enable(str(tmp_path / "other")) == target   # already set: kept
  finally:
    for k, v in saved.items():
      jax.config.update(k, v)
