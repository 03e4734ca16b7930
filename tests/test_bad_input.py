"""Every command fails cleanly on bad input: exit 2, one ``error:`` line naming the bad thing.

The sweep is a table: :data:`ROWS` maps a command (``jaxspatial.<command>``) to its cases, each
``(id, argv, expect)``. For every case the test asserts

* exit status 2 and nothing but one line on stderr, starting ``error:``, with no traceback;
* ``expect`` (formatted like ``argv``) appears in that line, so it names the bad thing;
* nothing was written: ``{out}`` (every case's output location) does not exist afterwards.

Cases run in-process (``cli.run(lambda: module.main(argv))``, stderr captured), so most of
them import nothing heavy and compile nothing: model directories below hold zero-filled
variables of the right shapes (``jax.eval_shape``), and config errors must be caught by
``config_lib.validate`` before a step is traced. A few cases also run as real subprocesses
(:data:`SUBPROCESS`) to prove the ``python -m`` entry point.

Adding a command: add ``"name": [...]`` to :data:`ROWS`. In ``argv`` and ``expect``, ``{x}`` is
a path from the fixtures: ``{out}`` the output location (must stay unwritten), model directories
``{sg2}`` ``{ssn}`` ``{sgan}`` ``{reg}``, ``{empty_dir}`` (a directory without a checkpoint),
``{png}`` ``{png_big}`` ``{png_gray}`` ``{png_rgba}`` (16 px RGB / 32 px / 16 px grey-level /
RGBA images), ``{mask}`` ``{mask_big}`` ``{mask_grey}`` (binary, wrong-size and 3-level masks), and
the bad files of :data:`BAD_FILES` (``{missing}``, ``{text}``, ``{random}``, ``{zero}``,
``{truncated_png}``, ``{foreign_pickle}``, ``{truncated_pt}``). :func:`bad_file_cases` expands
one file argument into a case per kind of bad file.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import os
import pickle
import shlex
import subprocess
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxspatial import cli
from jaxspatial import checkpoint
from jaxspatial import families
from jaxspatial import models as models_lib
from xla_env import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES = 16
SG2 = "configs/stylegan2.py:tiny"

# name -> how to write it (a kind of damaged or foreign file).
BAD_FILES = {
    "missing": None,
    "zero": b"",
    "text": b"root:x:0:0:root:/root:/bin/bash\nhello\n",
    "random": np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes(),
    "foreign_pickle": pickle.dumps(datetime.date(2020, 1, 1), protocol=2),
}


def bad_file_cases(prefix: str, argv: str, kinds=("missing", "zero", "text", "random")):
  """One case per bad file kind for the ``{bad}`` slot of ``argv``: each must be named."""
  return [(f"{prefix}-{k}", argv.replace("{bad}", "{%s}" % k), "{%s}" % k) for k in kinds]


def _train(args: str) -> str:
  return f"--config {{repo}}/{args} --workdir {{out}}/w"


ROWS: dict[str, list[tuple[str, str, str]]] = {
    "train": [
        ("no-config", "--workdir {out}/w", "--config"),
        ("no-workdir", f"--config {{repo}}/{SG2}", "--workdir"),
        ("config-file-missing", "--config {missing}:tiny --workdir {out}/w", "{missing}"),
        ("config-file-text", "--config {text} --workdir {out}/w", "text.bin"),
        ("unknown-preset", _train("configs/stylegan2.py:huge"), "'huge'"),
        ("unknown-key", _train(f"{SG2} --config.nokey=3"), "nokey"),
        ("key-typo-in-plain-text", _train(f"{SG2} --config.batchsize=3"),
         "no such config key 'batchsize'; did you mean \"batch_size\" instead of \"batchsize\"?"),
        ("wrong-type", _train(f"{SG2} --config.batch_size=abc"), "batch_size"),
        ("batch-vs-devices", _train(f"{SG2} --config.batch_size=12"), "8 devices"),
        ("batch-vs-mbstd-group",
         _train(f"{SG2} --config.model.mbstd_group_size=3"), "mbstd_group_size=3"),
        ("resolution-not-power-of-two", _train(f"{SG2} --config.model.resolution=24"), "24"),
        ("data-vs-model-resolution", _train(f"{SG2} --config.data.resolution=32"),
         "data.resolution (32)"),
        ("unknown-data-source", _train(f"{SG2} --config.data.source=imagenet"), "imagenet"),
        ("folder-without-path", _train(f"{SG2} --config.data.source=folder"), "data.path"),
        ("folder-path-missing",
         _train(f"{SG2} --config.data.source=folder --config.data.path={{missing}}"), "{missing}"),
        ("negative-steps", _train(f"{SG2} --config.total_steps=-1"), "total_steps"),
        ("r1-every-zero", _train(f"{SG2} --config.loss.r1_every=0"), "r1_every"),
        ("ssn-grid-beyond-resolution",
         _train("configs/ssn.py:tiny --config.model.grid_h=32"), "32x4"),
        ("ssn-grid-not-power-of-two",
         _train("configs/ssn.py:tiny --config.model.grid_w=3"), "4x3"),
        ("init-from-missing", _train(f"{SG2} --config.init_from={{missing}}"), "{missing}"),
        ("init-from-empty-dir", _train(f"{SG2} --config.init_from={{empty_dir}}"), "{empty_dir}"),
        ("init-from-wrong-kind", _train(f"{SG2} --config.init_from={{reg}}"), "'regressor'"),
    ],
    "generate": [
        ("no-output", "--checkpoint {sg2}", "--out"),
        ("no-checkpoint-flag", "--out {out}/g.png", "--checkpoint"),
        ("checkpoint-missing", "--checkpoint {missing} --out {out}/g.png", "{missing}"),
        ("checkpoint-empty-dir", "--checkpoint {empty_dir} --out {out}/g.png", "{empty_dir}"),
        ("checkpoint-is-a-file", "--checkpoint {png} --out {out}/g.png", "{png}"),
        ("step-absent", "--checkpoint {sg2} --step 7 --out {out}/g.png", "step 7"),
        ("step-unparsable", "--checkpoint {sg2} --step x --out {out}/g.png", "--step"),
        ("seeds-unparsable", "--checkpoint {sg2} --seeds a-b --out {out}/g.png", "'a-b'"),
        ("seeds-backwards", "--checkpoint {sg2} --seeds 5-2 --out {out}/g.png", "'5-2'"),
        ("seeds-empty", "--checkpoint {sg2} --seeds , --out {out}/g.png", "','"),
        ("truncation-unparsable", "--checkpoint {sg2} --truncation hi --out {out}/g.png",
         "--truncation"),
        ("noise-unknown", "--checkpoint {sg2} --noise loud --out {out}/g.png", "'loud'"),
        ("z-wrong-shape", "--checkpoint {sg2} --z {z_wrong} --out {out}/g.png", "{z_wrong}"),
        *bad_file_cases("z", "--checkpoint {sg2} --z {bad} --out {out}/g.png"),
    ],
    "convert_torch": [
        ("no-out", "{truncated_pt}", "--out"),
        ("target-unknown", "{truncated_pt} --target biggan --out {out}", "'biggan'"),
        ("passwd", "/etc/passwd --out {out}", "/etc/passwd"),
        ("directory", "{empty_dir} --out {out}", "{empty_dir}"),
        ("truncated-zip", "{truncated_pt} --out {out}", "{truncated_pt}"),
        *bad_file_cases("file", "{bad} --out {out}", tuple(BAD_FILES)),
    ],
    "resample": [
        *bad_file_cases("latent", "--checkpoint {ssn} --blocks 0,0 --latent {bad} --out {out}/r.png"),
        ("wrong-kind", "--checkpoint {sg2} --blocks 0,0 --out {out}/r.png", "'stylegan2'"),
        ("block-outside-grid", "--checkpoint {ssn} --blocks 4,0 --out {out}/r.png", "(4, 0)"),
        ("block-negative", "--checkpoint {ssn} --blocks 0,-1 --out {out}/r.png", "(0, -1)"),
        ("block-unparsable", "--checkpoint {ssn} --blocks 1:2 --out {out}/r.png", "'1:2'"),
        ("num-zero", "--checkpoint {ssn} --blocks 0,0 --num 0 --out {out}/r.png", "--num"),
        ("seed-unparsable", "--checkpoint {ssn} --blocks 0,0 --seed x --out {out}/r.png",
         "--seed"),
        ("checkpoint-missing", "--checkpoint {missing} --blocks 0,0 --out {out}/r.png",
         "{missing}"),
    ],
    "edit_heatmap": [
        *bad_file_cases("latent", "--checkpoint {sgan} --move 0:0.1,0.1 --latent {bad} --out {out}/e.png"),
        ("wrong-kind", "--checkpoint {sg2} --move 0:0.1,0.1 --out {out}/e.png", "stylegan2"),
        ("centre-out-of-range", "--checkpoint {sgan} --move 99:0.1,0.1 --out {out}/e.png",
         "centre 99"),
        ("move-unparsable", "--checkpoint {sgan} --move 0:a,b --out {out}/e.png", "'0:a,b'"),
        ("move-one-number", "--checkpoint {sgan} --move 0:0.1 --out {out}/e.png", "'0:0.1'"),
        ("scale-negative", "--checkpoint {sgan} --scale 0:-2 --out {out}/e.png", "'0:-2'"),
        ("index-unparsable", "--checkpoint {sgan} --remove one --out {out}/e.png", "'one'"),
        ("nothing-to-do", "--checkpoint {sgan} --out {out}/e.png", "nothing to do"),
        ("edit-and-grid", "--checkpoint {sgan} --grid layouts --remove 0 --out {out}/e.png",
         "--grid"),
        ("rows-zero", "--checkpoint {sgan} --grid layouts --rows 0 --out {out}/e.png", "--rows"),
    ],
    "drag": [
        *bad_file_cases("latent", "--checkpoint {sg2} --handle 1,1 --target 2,2 --latent {bad} --out {out}/d.png"),
        ("wrong-kind", "--checkpoint {ssn} --handle 1,1 --target 2,2 --out {out}/d.png", "ssn model"),
        ("handle-outside-image",
         "--checkpoint {sg2} --handle 40,1 --target 2,2 --out {out}/d.png", "40"),
        ("target-outside-image",
         "--checkpoint {sg2} --handle 1,1 --target 2,-3 --out {out}/d.png", "-3"),
        ("unpaired-points",
         "--checkpoint {sg2} --handle 1,1 --handle 2,2 --target 3,3 --out {out}/d.png",
         "2 --handle but 1 --target"),
        ("point-unparsable", "--checkpoint {sg2} --handle 1;1 --target 2,2 --out {out}/d.png",
         "'1;1'"),
        ("mask-wrong-size",
         "--checkpoint {sg2} --handle 1,1 --target 2,2 --mask {mask_big} --out {out}/d.png",
         "32x32"),
        ("mask-not-binary",
         "--checkpoint {sg2} --handle 1,1 --target 2,2 --mask {mask_grey} --out {out}/d.png",
         "{mask_grey}"),
        ("steps-zero", "--checkpoint {sg2} --handle 1,1 --target 2,2 --steps 0 --out {out}/d.png",
         "--steps"),
        *bad_file_cases("mask", "--checkpoint {sg2} --handle 1,1 --target 2,2 --mask {bad} "
                                "--out {out}/d.png"),
    ],
    "composite": [
        ("wrong-kind", "--checkpoint {sg2} --part {png}:{mask} --out {out}/c.png", "'stylegan2'"),
        ("no-part", "--checkpoint {reg} --out {out}/c.png", "--part"),
        ("image-and-mask-sizes-differ", "--checkpoint {reg} --part {png_big}:{mask} --out {out}/c.png",
         "{png_big}"),
        ("mask-wrong-size", "--checkpoint {reg} --part {png}:{mask_big} --out {out}/c.png",
         "{mask_big}"),
        ("mask-not-binary", "--checkpoint {reg} --part {png}:{mask_grey} --out {out}/c.png",
         "{mask_grey}"),
        *bad_file_cases("image", "--checkpoint {reg} --part {bad}:{mask} --out {out}/c.png",
                        ("missing", "zero", "text", "random", "truncated_png")),
        *bad_file_cases("mask", "--checkpoint {reg} --part {png}:{bad} --out {out}/c.png"),
    ],
    "inpaint": [
        ("wrong-kind", "--checkpoint {ssn} --image {png} --mask {mask} --out {out}/i.png", "'ssn'"),
        ("checkpoint-missing",
         "--checkpoint {missing} --image {png} --mask {mask} --out {out}/i.png", "{missing}"),
        ("image-is-a-directory",
         "--checkpoint {reg} --image {empty_dir} --mask {mask} --out {out}/i.png", "{empty_dir}"),
        ("image-and-mask-sizes-differ",
         "--checkpoint {reg} --image {png_big} --mask {mask} --out {out}/i.png", "{png_big}"),
        ("mask-not-binary",
         "--checkpoint {reg} --image {png} --mask {mask_grey} --out {out}/i.png", "{mask_grey}"),
        ("finetune-negative",
         "--checkpoint {reg} --image {png} --mask {mask} --finetune -1 --out {out}/i.png",
         "finetune steps"),
        *bad_file_cases("image", "--checkpoint {reg} --image {bad} --mask {mask} "
                                 "--out {out}/i.png", ("missing", "zero", "text", "truncated_png")),
    ],
    "edit_attribute": [
        ("wrong-kind", "--checkpoint {sgan} --source {png} --edited {png} --target {png} "
                       "--out {out}/a.png", "'spatialgan'"),
        ("no-target", "--checkpoint {reg} --source {png} --edited {png} --out {out}/a.png",
         "--target"),
        *bad_file_cases("edited", "--checkpoint {reg} --source {png} --edited {bad} --target "
                                  "{png} --out {out}/a.png", ("missing", "random",)),
    ],
    "evaluate": [
        ("metric-unknown", "--checkpoint {sg2} --metrics fid,beauty --out {out}/e.json", "beauty"),
        ("num-zero", "--checkpoint {sg2} --metrics ppl --num 0 --out {out}/e.json", "--num"),
        ("checkpoint-missing", "--checkpoint {missing} --out {out}/e.json", "{missing}"),
        ("data-unparsable", "--checkpoint {sg2} --metrics fid --data source --out {out}/e.json",
         "'source'"),
        ("batch-size-zero", "--checkpoint {sg2} --metrics ppl --batch-size 0 --out {out}/e.json",
         "--batch-size"),
        # (with --out, a report listing the failed metrics is written: by design, not partial)
        ("distortion-needs-ssn", "--checkpoint {sg2} --metrics distortion", "needs an SSN"),
    ],
    "reproduce": [
        ("target-unknown", "ssn-everything --out {out}", "ssn-everything"),
        ("seeds-zero", "ssn-lambda --seeds 0 --runs {out}/runs --out {out}", "--seeds"),
        ("scale-unknown", "ssn-lambda --scale huge --runs {out}/runs --out {out}", "huge"),
        ("units-unknown", "ssn-lambda --units nosuch-s0 --runs {out}/runs --out {out}",
         "nosuch-s0"),
        ("units-without-target", "--units stylegan2-s0 --out {out}", "name their targets"),
    ],
    "compare_composites": [
        ("regressor-without-name", "--regressor {reg} --critic {sg2} --out {out}/c.png",
         "NAME=DIR"),
        ("regressor-wrong-kind", "--regressor A={sg2} --critic {sg2} --out {out}/c.png",
         "'stylegan2'"),
        ("critic-missing", "--regressor A={reg} --critic {missing} --out {out}/c.png",
         "{missing}"),
        ("num-one", "--regressor A={reg} --critic {sg2} --num 1 --out {out}/c.png", "--num"),
        ("bootstrap-negative",
         "--regressor A={reg} --critic {sg2} --bootstrap -1 --out {out}/c.png", "--bootstrap"),
    ],
    "export_torch": [
        ("directory-missing", "{missing} --out {out}/g.pt", "{missing}"),
        ("wrong-kind", "{ssn} --out {out}/g.pt", "ssn"),
        ("format-unknown", "{sg2} --format onnx --out {out}/g.pt", "onnx"),
    ],
    "project": [
        ("checkpoint-missing", "--checkpoint {missing} --image {png} --out {out}", "{missing}"),
        ("wrong-kind", "--checkpoint {reg} --image {png} --out {out}", "regressor"),
        ("image-grey", "--checkpoint {sg2} --image {png_gray} --out {out}", "{png_gray}"),
        ("image-rgba", "--checkpoint {sg2} --image {png_rgba} --out {out}", "{png_rgba}"),
        ("image-is-a-directory", "--checkpoint {sg2} --image {empty_dir} --out {out}",
         "{empty_dir}"),
        ("steps-negative", "--checkpoint {sg2} --image {png} --steps -1 --out {out}", "--steps"),
        ("pti-negative", "--checkpoint {sg2} --image {png} --pti -2 --out {out}", "--pti"),
        ("init-unparsable", "--checkpoint {sg2} --image {png} --init mean --out {out}", "mean"),
        ("loss-unknown", "--checkpoint {sg2} --image {png} --loss ssim --out {out}", "ssim"),
        *bad_file_cases("image", "--checkpoint {sg2} --image {bad} --out {out}",
                        ("missing", "zero", "text", "random", "truncated_png")),
    ],
    "scene": [
        ("checkpoint-missing", "--checkpoint {missing} --out {out}/s.png", "{missing}"),
        ("not-a-shapes-run", "--checkpoint {sg2} --out {out}/s.png", "not trained on the shapes"),
        ("out-not-png", "--checkpoint {sg2} --out {out}/s.jpg", "{out}/s.jpg"),
        ("index-negative", "--checkpoint {sg2} --index -1 --out {out}/s.png", "--index"),
    ],
    "studio.__main__": [
        ("checkpoint-missing", "--checkpoint {missing} --out {out}", "{missing}"),
        ("checkpoint-is-a-file", "--checkpoint {png} --out {out}", "{png}"),
        ("port-out-of-range", "--checkpoint {sg2} --port 70000 --out {out}", "--port"),
        ("history-too-short", "--checkpoint {sg2} --max-history 1 --out {out}", "--max-history"),
    ],
}

# (command, argv, expect) run as `python -m jaxspatial.<command>`, with its XLA_FLAGS (the
# in-process cases see the test session's 8 devices). The first three are the failures
# issue 17 quoted, as a new user typed them.
SUBPROCESS = [
    ("convert_torch", "/etc/passwd --out {out}", "/etc/passwd", None),
    ("convert_torch", "{text} --out {out}", "not a PyTorch file", None),
    ("train", _train(f"{SG2} --config.batch_size=7"), "mbstd_group_size=4", 1),
]


def _zeros(fn, *args):
  """Variables of ``fn(*args)``'s shapes, all zero: a model directory without compiling."""
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(fn, *args))


def _save(directory, models, model_cfg):
  checkpoint.save_model_dir(directory, models, ml_collections.ConfigDict({"model": model_cfg}))


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
  """``{name: path}`` for the ``{name}`` slots of the table (see the module docstring)."""
  from jaxspatial.models import regressor as R
  from jaxspatial.models.ssn import ssn_model_config
  from jaxspatial.models.spatialgan import spatialgan_model_config
  root = tmp_path_factory.mktemp("bad_input")
  key = jax.random.key(0)
  small = dict(z_dim=16, w_dim=16, n_mlp=1, channel_base=128, channel_max=16)
  sg2_cfg = models_lib.stylegan2_model_config(RES, **small)
  g = families.build_generator(sg2_cfg)
  sg2_vars = _zeros(g.init, key, jnp.zeros((1, 16)))
  _save(root / "sg2", {"g_ema": sg2_vars}, sg2_cfg)
  ssn_cfg = ssn_model_config(RES, grid=(4, 4), **small)
  g = families.build_generator(ssn_cfg)
  _save(root / "ssn", {"g_ema": _zeros(g.init, key, jnp.zeros((1, 4, 4, 16)))}, ssn_cfg)
  sgan_cfg = spatialgan_model_config(RES, sel_hidden=8, **small)
  g = families.build_generator(sgan_cfg)
  init = lambda k: g.init({"params": k, "noise": k}, jnp.zeros((1, 16)), g.sample_heatmaps(k, 1))
  _save(root / "sgan", {"g_ema": _zeros(init, key)}, sgan_cfg)
  reg_cfg = R.regressor_model_config(sg2_cfg, depth=18, width=8)
  _save(root / "reg", {"e": _zeros(lambda k: R.init_regressor(reg_cfg, k), key), "g_ema": sg2_vars}, reg_cfg)

  p = {k: root / k for k in ("sg2", "ssn", "sgan", "reg")}
  p["empty_dir"] = root / "empty_dir"
  p["empty_dir"].mkdir()
  rng = np.random.default_rng(0)
  images = {"png": rng.integers(0, 256, (RES, RES, 3), np.uint8),
            "png_big": rng.integers(0, 256, (2 * RES, 2 * RES, 3), np.uint8),
            "png_gray": rng.integers(0, 256, (RES, RES), np.uint8),
            "png_rgba": rng.integers(0, 256, (RES, RES, 4), np.uint8),
            "mask": np.kron(np.eye(2, dtype=np.uint8) * 255, np.ones((RES // 2, RES // 2), np.uint8)),
            "mask_big": np.full((2 * RES, 2 * RES), 255, np.uint8),
            "mask_grey": np.array([[0, 128, 255, 255]] * 4, np.uint8).repeat(4, 0).repeat(4, 1)}
  for name, array in images.items():
    p[name] = root / f"{name}.png"
    Image.fromarray(array).save(p[name])
  p["truncated_png"] = root / "truncated.png"
  p["truncated_png"].write_bytes(p["png_big"].read_bytes()[:100])
  for name, data in BAD_FILES.items():
    p[name] = root / f"{name}.bin"
    if data is not None:
      p[name].write_bytes(data)
  p["z_wrong"] = root / "z_wrong.npy"
  np.save(p["z_wrong"], np.zeros((2, 7), np.float32))
  import torch
  torch.save({"g_ema": {"w": torch.zeros(64)}}, root / "full.pt")
  p["truncated_pt"] = root / "truncated.pt"
  p["truncated_pt"].write_bytes((root / "full.pt").read_bytes()[:300])
  p["repo"] = REPO
  return {k: str(v) for k, v in p.items()}


def run_in_process(command: str, argv: list[str]) -> tuple[int, str]:
  """``python -m jaxspatial.<command> argv`` in this process: (exit status, stderr)."""
  module = importlib.import_module(f"jaxspatial.{command}")
  patch_argv = contextlib.nullcontext()
  if command == "train":
    # absl flags are global: forget the previous case's values and its --config.KEY flags
    # (ml_collections defines one per override it finds in sys.argv).
    from absl import flags
    for name in [n for n in flags.FLAGS if n.startswith("config.")]:
      delattr(flags.FLAGS, name)
    flags.FLAGS.unparse_flags()
    argv = [command, *argv]
    patch_argv = mock.patch.object(sys, "argv", argv)
  err = io.StringIO()
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), patch_argv:
    try:
      cli.run(lambda: module.main(argv))
      status = 0
    except SystemExit as e:
      status = e.code
  return status, err.getvalue()


def assert_one_error_line(status, stderr: str, expect: str, out):
  lines = stderr.strip().splitlines()
  assert status == 2, f"exit {status}, stderr:\n{stderr[-3000:]}"
  assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
  assert "Traceback" not in stderr
  assert expect in lines[0], f"{expect!r} not named in: {lines[0]}"
  assert not os.path.exists(out), f"a failed command left {os.listdir(out)} in {out}"


CASES = [pytest.param(cmd, argv, expect, id=f"{cmd}-{name}")
         for cmd, rows in ROWS.items() for name, argv, expect in rows]


@pytest.mark.parametrize("command,argv,expect", CASES)
def test_bad_input_is_one_error_line(command, argv, expect, paths, tmp_path):
  slots = {**paths, "out": str(tmp_path / "out")}
  status, stderr = run_in_process(command, shlex.split(argv.format(**slots)))
  assert_one_error_line(status, stderr, expect.format(**slots), slots["out"])


def test_subprocess_entry_points(paths, tmp_path):
  """The real ``python -m`` commands, started together (their start-up dominates)."""
  procs = []
  for i, (command, argv, expect, devices) in enumerate(SUBPROCESS):
    slots = {**paths, "out": str(tmp_path / f"out{i}")}
    env = dict(os.environ)
    if devices:
      env["XLA_FLAGS"] = xla_flags(devices)
    proc = subprocess.Popen([sys.executable, "-m", f"jaxspatial.{command}",
                             *shlex.split(argv.format(**slots))], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append((proc, expect.format(**slots), slots["out"]))
  for proc, expect, out in procs:
    _, stderr = proc.communicate(timeout=300)
    assert_one_error_line(proc.returncode, stderr, expect, out)


# Root reads a mode-000 file, but not these: procfs checks a sysctl's own mode bits even for
# root, and a write-only one (0200) refuses every read with EACCES.
_UNREADABLE_EVEN_AS_ROOT = ("/proc/sys/vm/compact_memory", "/proc/sys/vm/drop_caches")


def _unreadable_file(tmp_path) -> str:
  """A regular file whose ``open(path, "rb")`` raises PermissionError in this process: a
  mode-000 file, or as root (CI runs as root) a write-only sysctl file."""
  if os.geteuid() != 0:
    locked = tmp_path / "locked.pt"
    locked.write_bytes(b"PK\x03\x04")
    locked.chmod(0)
    return str(locked)
  for path in _UNREADABLE_EVEN_AS_ROOT:
    try:
      open(path, "rb").close()
    except PermissionError:
      if os.path.isfile(path):
        return path
    except OSError:
      pass
  pytest.skip("running as root without a procfs file root may not read")


def test_unreadable_file_is_named(tmp_path):
  """A file the user may not read is named in the one-line error (no traceback)."""
  unreadable = _unreadable_file(tmp_path)
  status, stderr = run_in_process("convert_torch", [unreadable, "--out", str(tmp_path / "o")])
  assert_one_error_line(status, stderr, unreadable, str(tmp_path / "o"))
  assert "cannot read" in stderr and "Permission denied" in stderr, stderr


@pytest.mark.parametrize("processes,message", [(3, "3 processes"), (16, "16 processes")])
def test_batch_vs_processes(processes, message):
  """Multi-process runs cannot be started here; validate() is told the process count."""
  from jaxspatial.training import config_lib
  from helpers import load_config
  config = load_config("tiny")
  with pytest.raises(cli.UserError, match=message):
    config_lib.validate(config, num_devices=1, num_processes=processes)
