"""One process of the 2-process test (tests/test_multiprocess.py).

usage: python multiprocess_worker.py PORT NUM_PROCESSES PROCESS_ID STEPS OUT_DIR

Joins the distributed runtime over localhost (CPU collectives over gloo), trains the
``tiny`` StyleGAN2 on a global mesh for STEPS steps and writes, per step, this process's
copy of the parameters (a digest and a float64 sum) and the rows of the data it read; then
saves a checkpoint with every process taking part.
"""

import hashlib
import json
import os
import pathlib
import sys

port, nproc, pid, steps, out = sys.argv[1:6]
from xla_env import xla_flags  # noqa: E402  (this script's folder is sys.path[0])

os.environ["XLA_FLAGS"] = xla_flags(4)
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxspatial.training import distributed  # noqa: E402

distributed.initialize(f"localhost:{port}", int(nproc), int(pid), heartbeat_timeout_s=20)

from jaxspatial import checkpoint  # noqa: E402
from jaxspatial.data import pipeline  # noqa: E402
from jaxspatial.training import config_lib, loop  # noqa: E402

config = config_lib.load("stylegan2", "tiny")

trainer = loop.Trainer(config)
trainer.initialize()
data = pipeline.make_iterator(config.data, global_batch_size=config.batch_size, seed=config.seed)


def local_params_digest(tree):
  leaves = [np.asarray(x.addressable_shards[0].data) for x in jax.tree.leaves(tree)]
  h = hashlib.sha256(b"".join(l.tobytes() for l in leaves)).hexdigest()
  return h, float(sum(l.astype(np.float64).sum() for l in leaves))


record = {"process_index": jax.process_index(), "process_count": jax.process_count(),
          "devices": jax.device_count(), "steps": []}
for _ in range(int(steps)):
  local = next(data)
  trainer.step(trainer.global_batch(local))
  digest, total = local_params_digest(trainer.state.g_ema["params"])
  record["steps"].append({"digest": digest, "sum": total,
                          "image_row_sums": local["image"].reshape(len(local["image"]), -1)
                                                          .sum(1).tolist()})
mngr = checkpoint.manager(pathlib.Path(out) / "run", async_save=False)
trainer.save(mngr, data.get_state(), force=True)
mngr.wait_until_finished()
mngr.close()
pathlib.Path(out, f"process_{pid}.json").write_text(json.dumps(record))
