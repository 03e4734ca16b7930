"""Multi-host paths proven with 2 local processes x 4 CPU devices (jax.distributed over
localhost, gloo collectives): identical replicas, equality with one 8-device process,
disjoint data shards, checkpoints that restore elsewhere, and failure + resume when a
process dies."""

import copy
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from helpers import batches, load_config
from xla_env import xla_flags

pytestmark = pytest.mark.multiprocess
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
STEPS = 3


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def env(devices: int) -> dict:
  return {**os.environ, "JAX_PLATFORMS": "cpu",
          "XLA_FLAGS": xla_flags(devices)}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
  out = tmp_path_factory.mktemp("pair")
  port = free_port()
  procs = [subprocess.Popen([sys.executable, str(HERE / "multiprocess_worker.py"), str(port), "2",
                             str(i), str(STEPS), str(out)],
                            cwd=REPO, env=env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
  return out, [json.loads((out / f"process_{i}.json").read_text()) for i in range(2)]


def test_processes_hold_identical_parameters_after_each_step(pair):
  _, (p0, p1) = pair
  assert p0["process_count"] == 2 and p0["devices"] == 8
  for s0, s1 in zip(p0["steps"], p1["steps"]):
    assert s0["digest"] == s1["digest"]


def test_processes_read_disjoint_shards_forming_the_global_batch(pair):
  _, (p0, p1) = pair
  config = load_config("tiny")
  single = batches(config, STEPS)
  for step, (s0, s1) in enumerate(zip(p0["steps"], p1["steps"])):
    assert not set(s0["image_row_sums"]) & set(s1["image_row_sums"])
    global_rows = single[step]["image"].reshape(config.batch_size, -1).sum(1)
    np.testing.assert_allclose(s0["image_row_sums"] + s1["image_row_sums"], global_rows,
                               rtol=1e-6)


def test_pair_equals_single_process_and_restores_in_one_process(pair):
  """The pair's checkpoint (2 processes x 4 devices) restores into a 1-process 8-device
  trainer and equals that trainer's own run on the same global batches; it also restores
  into a 1-device trainer."""
  from jaxspatial import checkpoint
  from jaxspatial.training import loop
  out, _ = pair
  config = load_config("tiny")
  config = copy.deepcopy(config)
  config.mesh.data = 8
  restored = loop.Trainer(config)
  mngr = checkpoint.manager(out / "run", read_only=True)
  restored.restore(mngr, STEPS)
  mngr.close()
  assert int(restored.state.step) == STEPS
  single = loop.Trainer(config)
  single.initialize()
  for b in batches(config, STEPS):
    single.step(single.global_batch(b))
  # The two runs reduce gradients in different orders (gloo across processes vs XLA within
  # one), and Adam turns a float32 rounding difference in a near-zero gradient into up to a
  # few 1e-5 of parameter change; a wrong shard or a missing update would differ by ~lr
  # (2.5e-3) per step.
  for a, b in zip(jax.tree.leaves(jax.device_get(single.state.g_ema)),
                  jax.tree.leaves(jax.device_get(restored.state.g_ema))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  # ... and into a 1-device trainer (1 x 1): the same arrays, resharded on restore.
  config.mesh.data = 1
  one = loop.Trainer(config)
  mngr = checkpoint.manager(out / "run", read_only=True)
  one.restore(mngr, STEPS)
  mngr.close()
  assert len(jax.tree.leaves(one.state)[0].sharding.device_set) == 1
  for a, b in zip(jax.tree.leaves(jax.device_get(one.state)),
                  jax.tree.leaves(jax.device_get(restored.state))):
    np.testing.assert_array_equal(a, b)


def _launch(workdir, port, i, steps):
  return subprocess.Popen(
      [sys.executable, "-m", "jaxspatial.train", "--config", "configs/stylegan2.py:tiny",
       "--workdir", str(workdir), f"--config.total_steps={steps}", "--config.checkpoint_every=1",
       "--config.log_every=1", "--coordinator", f"localhost:{port}", "--num_processes", "2",
       "--process_id", str(i), "--heartbeat_timeout", "10"],
      cwd=REPO, env=env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_process_fails_the_run_and_relaunch_resumes(tmp_path):
  """Stated timeout: the survivor exits non-zero within 10 s heartbeat + 120 s slack."""
  port = free_port()
  procs = [_launch(tmp_path, port, i, 100000) for i in range(2)]
  try:
    ckpts = tmp_path / "checkpoints"
    deadline = time.time() + 600
    while time.time() < deadline and len([p for p in ckpts.glob("[0-9]*")]) < 2:
      for p in procs:
        assert p.poll() is None, p.communicate()[1][-3000:]
      time.sleep(0.5)
    assert len(list(ckpts.glob("[0-9]*"))) >= 2, "the pair wrote no two checkpoints in 600 s"
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    t = time.time()
    _, err = procs[0].communicate(timeout=130)
    assert procs[0].returncode != 0, err[-3000:]
    assert time.time() - t < 130, f"the survivor took {time.time() - t:.0f} s to fail"
  finally:   # never leave a 100000-step run behind, whatever failed above
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  last = max(int(p.name) for p in ckpts.glob("[0-9]*") if p.name.isdigit())
  port = free_port()
  relaunch = [_launch(tmp_path, port, i, last + 2) for i in range(2)]
  try:
    outs = [p.communicate(timeout=900) for p in relaunch]
  finally:
    for p in relaunch:
      if p.poll() is None:
        p.kill()
  for p, (o, e) in zip(relaunch, outs):
    assert p.returncode == 0, e[-3000:]
  assert "resuming from step" in outs[0][0]
  assert max(int(p.name) for p in ckpts.glob("[0-9]*") if p.name.isdigit()) == last + 2
