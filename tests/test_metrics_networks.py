"""Parity of the metric networks with the real PyTorch code (reference/perceptual).

Each state dict is rebuilt from the reference recipe with numpy, saved as the standard
``.pth``, converted with ``python -m jaxspatial.convert_torch --net ...`` into a temporary
``$JAXSPATIAL_HOME`` and run through the public functions. Tolerance ``1e-4 * max|ref|``: about
100x the float32 noise floor of the reference and >30x below the smallest porting mistake
(see reference/perceptual/README.md).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxspatial import metrics
from jaxspatial.metrics import fid, ppl
from jaxspatial.nets import weights

torch = pytest.importorskip("torch")

REPO = pathlib.Path(__file__).resolve().parents[1]


def recipe_tensor(seed: int, k: int, shape, role: str) -> np.ndarray:
  """The reference recipe (recipe.md), verbatim in behaviour."""
  shape = tuple(int(s) for s in shape)
  if role == "bn_num_batches_tracked":
    return np.zeros((), np.int64)
  z = np.random.default_rng(seed + k).standard_normal(shape).astype(np.float32)
  if role in ("conv_weight", "linear_weight"):
    return z * np.float32(np.sqrt(2.0 / int(np.prod(shape[1:]))))
  if role == "bias":
    return np.float32(0.01) * z
  if role == "bn_weight":
    return np.float32(1.0) + np.float32(0.1) * z
  if role in ("bn_bias", "bn_running_mean"):
    return np.float32(0.1) * z
  if role == "bn_running_var":
    return np.float32(1.0) + np.float32(0.1) * np.abs(z)
  raise ValueError(role)


def build_state_dict(folder: pathlib.Path) -> dict[str, np.ndarray]:
  """The state dict the reference run loaded: recipe keys, constants, shipped heads, aliases."""
  man = json.loads((folder / "manifest.json").read_text())
  heads = folder / "lin_weights_shipped.npz"
  shipped = np.load(heads) if heads.exists() else None
  sd: dict[str, np.ndarray] = {}
  for k, ((key, shape, _), role) in enumerate(zip(man["keys"], man["roles"])):
    if role == "constant":
      sd[key] = np.asarray(man["constants"][key], np.float32).reshape(shape)
    elif role == "shipped":
      sd[key] = shipped[key]
    elif role.startswith("alias:"):
      sd[key] = sd[role[len("alias:"):]]
    else:
      sd[key] = recipe_tensor(man["seed"], k, shape, role)
  return sd


def save_pth(sd: dict, path: pathlib.Path) -> pathlib.Path:
  torch.save({k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
              for k, v in sd.items()}, path)
  return path


def convert_cli(jobs: list[tuple[str, pathlib.Path]], home: pathlib.Path) -> None:
  """Runs ``python -m jaxspatial.convert_torch --net NET FILE`` for every job, concurrently."""
  env = dict(os.environ, JAXSPATIAL_HOME=str(home))
  procs = [(net, subprocess.Popen(
      [sys.executable, "-m", "jaxspatial.convert_torch", "--net", net, str(path)], env=env,
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for net, path in jobs]
  for net, proc in procs:
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert str(home / f"{net}.npz") in out and (home / f"{net}.npz").is_file()


def nhwc(x: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def assert_close(got, ref, name: str) -> None:
  tol = 1e-4 * float(np.abs(ref).max())
  err = float(np.abs(np.asarray(got) - ref).max())
  assert err <= tol, f"{name}: max abs error {err:.3g} > {tol:.3g}"


@pytest.fixture(scope="module")
def perceptual(reference_dir) -> pathlib.Path:
  return reference_dir / "perceptual"


@pytest.fixture(scope="module")
def homes(perceptual, tmp_path_factory) -> dict[str, pathlib.Path]:
  """``main``: every net converted by the CLI from the reference state dicts (LPIPS as full
  state dicts). ``torchvision``: AlexNet as torchvision's file + the heads-only ``alex.pth``."""
  src = tmp_path_factory.mktemp("pth")
  main = tmp_path_factory.mktemp("home_main")
  jobs = []
  for folder, net in [("inception_fid", "inception"), ("lpips_vgg", "lpips-vgg"),
                      ("lpips_alex", "lpips-alex"), ("vgg16_fc2", "vgg16")]:
    jobs.append((net, save_pth(build_state_dict(perceptual / folder), src / f"{net}.pth")))
  convert_cli(jobs, main)
  # torchvision route: features.* from the LPIPS recipe; the unused classifier as stride-0
  # tensors of the right shapes (a few bytes on disk).
  tv = tmp_path_factory.mktemp("home_torchvision")
  lp = build_state_dict(perceptual / "lpips_alex")
  manifest = json.loads((perceptual / "lpips_alex" / "manifest.json").read_text())
  keymap = manifest["torchvision_backbone_key"]
  alex = {tv_key: lp[k] for k, tv_key in keymap.items()}
  for i, (o, n_in) in {1: (4096, 9216), 4: (4096, 4096), 6: (1000, 4096)}.items():
    alex[f"classifier.{i}.weight"] = torch.zeros(()).expand(o, n_in)
    alex[f"classifier.{i}.bias"] = torch.zeros(()).expand(o)
  weights.convert_net("alexnet", save_pth(alex, src / "alexnet-owt.pth"), tv)
  heads = {f"lin{i}.model.1.weight": lp[f"lin{i}.model.1.weight"] for i in range(5)}
  weights.convert_net("lpips-alex", save_pth(heads, src / "alex.pth"), tv)
  return {"main": main, "torchvision": tv}


@pytest.fixture
def home(homes, monkeypatch) -> pathlib.Path:
  monkeypatch.setenv("JAXSPATIAL_HOME", str(homes["main"]))
  return homes["main"]


@pytest.fixture(scope="module")
def mesh4():
  """A 4-device mesh: the 4 reference images fill one batch without padding (VGG16, LPIPS)."""
  return metrics.data_mesh(jax.devices()[:4])


def test_inception_pool3_parity_64px_fid_path(home, perceptual):
  inputs = np.load(perceptual / "inception_fid" / "inputs.npz")
  ref = np.load(perceptual / "inception_fid" / "outputs.npz")
  feats = metrics.inception_features(nhwc(inputs["x64"]))   # padded to one batch per device
  assert feats.shape == (4, 2048) and feats.dtype == np.float32
  assert_close(feats, ref["pool3_64_fidpath"], "pool3 64px")


def test_inception_pool3_parity_299px(home, perceptual):
  inputs = np.load(perceptual / "inception_fid" / "inputs.npz")
  ref = np.load(perceptual / "inception_fid" / "outputs.npz")
  assert_close(metrics.inception_features(nhwc(inputs["x299"])),
               ref["pool3_299_raw"], "pool3 299px")


def test_inception_features_independent_of_device_count_and_batch(home, perceptual):
  """1 device with batches of 3 (the last padded) vs 8 devices with one padded batch."""
  x = nhwc(np.load(perceptual / "inception_fid" / "inputs.npz")["x64"])
  one = metrics.inception_features(x, batch_size=3, mesh=metrics.data_mesh(jax.devices()[:1]))
  eight = metrics.inception_features(x)
  np.testing.assert_allclose(one, eight, rtol=1e-5, atol=1e-6)
  a, b = fid.FeatureStats(2048), fid.FeatureStats(2048)
  a.append(one)
  b.append(eight[:2])
  b.append(eight[2:])
  np.testing.assert_allclose(a.cov(), b.cov(), rtol=1e-5, atol=1e-9)
  assert abs(fid.fid_from_stats(a, b)) < 1e-3


def test_vgg16_fc2_parity(home, perceptual, mesh4):
  inputs = np.load(perceptual / "vgg16_fc2" / "inputs.npz")
  ref = np.load(perceptual / "vgg16_fc2" / "outputs.npz")
  feats = metrics.vgg16_features(nhwc(inputs["x224"]), mesh=mesh4)
  assert feats.shape == (4, 4096)
  assert_close(feats, ref["fc2"], "vgg16 fc2")


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_parity(home, perceptual, mesh4, net):
  inputs = np.load(perceptual / f"lpips_{net}" / "inputs.npz")
  ref = np.load(perceptual / f"lpips_{net}" / "outputs.npz")
  x, y = nhwc(inputs["x64"]), nhwc(inputs["y64"])
  assert_close(metrics.lpips(x, y, net, mesh=mesh4), ref["dist"], f"lpips {net} dist")
  assert_close(metrics.lpips(y, x, net, mesh=mesh4), ref["dist_swapped"], f"lpips {net} swapped")
  np.testing.assert_array_equal(metrics.lpips(x, x, net, mesh=mesh4), 0.0)
  spatial = metrics.lpips(x, y, net, spatial=True, mesh=mesh4)
  assert spatial.shape == (4, 64, 64)
  assert_close(spatial[:1], ref["spatial_map_pair0"][:, 0], f"lpips {net} spatial")


def test_lpips_alex_from_torchvision_backbone_and_heads_file(homes, perceptual, mesh4, monkeypatch):
  monkeypatch.setenv("JAXSPATIAL_HOME", str(homes["torchvision"]))
  inputs = np.load(perceptual / "lpips_alex" / "inputs.npz")
  ref = np.load(perceptual / "lpips_alex" / "outputs.npz")
  assert_close(metrics.lpips(nhwc(inputs["x64"]), nhwc(inputs["y64"]), "alex", mesh=mesh4),
               ref["dist"],
               "lpips alex (torchvision backbone + heads file)")


def test_lpips_vgg_heads_file_takes_converted_vgg16_backbone(homes, perceptual, tmp_path):
  os.symlink(homes["main"] / "vgg16.npz", tmp_path / "vgg16.npz")
  shipped = np.load(perceptual / "lpips_vgg" / "lin_weights_shipped.npz")
  heads = save_pth({k: shipped[k] for k in shipped.files}, tmp_path / "vgg.pth")
  out = weights.convert_net("lpips-vgg", heads, tmp_path)
  got = np.load(out)
  vgg16 = np.load(homes["main"] / "vgg16.npz")
  for key in vgg16.files:
    if key.startswith("features/"):
      np.testing.assert_array_equal(got["net/" + key[len("features/"):]], vgg16[key])
  for i in range(5):
    np.testing.assert_array_equal(got[f"lin{i}"], shipped[f"lin{i}.model.1.weight"].reshape(-1))


def test_lpips_in_jit_and_grad(home, perceptual):
  module, params = metrics.lpips_module("alex")
  inputs = np.load(perceptual / "lpips_alex" / "inputs.npz")
  ref = np.load(perceptual / "lpips_alex" / "outputs.npz")
  x, y = nhwc(inputs["x64"]), nhwc(inputs["y64"])
  loss = jax.jit(lambda p, a, b: metrics.lpips_distance(p, a, b, "alex").mean())
  assert_close(loss(params, x, y), ref["dist"].mean(), "jitted lpips mean")
  assert_close(module.apply({"params": params}, x, y), ref["dist"], "module.apply")
  grad = jax.jit(jax.grad(lambda a, b: metrics.lpips_distance(params, a, b, "alex").sum()))
  g = np.asarray(grad(x, y))
  assert np.isfinite(g).all() and np.abs(g).max() > 0
  g_same = np.asarray(grad(x, x))         # minimum: zero, finite gradient
  assert np.isfinite(g_same).all() and np.abs(g_same).max() < 1e-6
  g_black = np.asarray(grad(np.full_like(x, -1.0), y))   # constant image: many zero-norm taps
  assert np.isfinite(g_black).all()


def test_ppl_with_real_lpips_on_a_toy_generator(home, mesh4):
  """End-to-end PPL with LPIPS VGG on a fixed 'generator' of W: finite, positive, deterministic."""
  basis = np.random.default_rng(0).standard_normal((8, 64 * 64 * 3)).astype(np.float32) / 8

  def generate(w):
    return np.tanh(w @ basis).reshape(-1, 64, 64, 3)

  def lpips_vgg(x, y):
    return metrics.lpips(x, y, "vgg", mesh=mesh4)

  def sample(seed, n):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, 8)), r.standard_normal((n, 8))

  kw = dict(num_samples=6, batch_size=4, sampling="full", lpips_fn=lpips_vgg)
  d1 = ppl.path_distances(sample, generate, **kw)
  d2 = ppl.path_distances(sample, generate, **kw)
  assert d1.shape == (6,) and np.isfinite(d1).all() and (d1 > 0).all()
  np.testing.assert_array_equal(d1, d2)


@pytest.fixture(scope="module")
def tiny_generator_dir(tmp_path_factory) -> pathlib.Path:
  """A random 16-px StyleGAN2 saved as convert_torch would (config without a data section)."""
  import jax.numpy as jnp
  import ml_collections
  from jaxspatial import families
  from jaxspatial import models
  from jaxspatial import checkpoint
  cfg = models.stylegan2_model_config(16, z_dim=16, w_dim=16, n_mlp=2, channel_base=128,
                                      channel_max=16)
  g_vars = jax.jit(families.build_generator(cfg).init)(jax.random.key(0), jnp.zeros((1, 16)))
  out = tmp_path_factory.mktemp("tiny_g")
  checkpoint.save_model_dir(out, {"g_ema": g_vars}, ml_collections.ConfigDict({"model": cfg}))
  return out


def _frechet_distance_of_samples(a: np.ndarray, b: np.ndarray) -> float:
  """FID of two small samples (n << dim) without a matrix square root: with centred rows A, B
  and unbiased covariances, tr sqrt(S_a S_b) is the sum of the singular values of
  A B^T / sqrt((n_a - 1)(n_b - 1))."""
  ca, cb = a - a.mean(0), b - b.mean(0)
  na, nb = len(a) - 1, len(b) - 1
  tr_sqrt = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
  return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum(ca ** 2) / na
               + np.sum(cb ** 2) / nb - 2 * tr_sqrt)


def _prdc_of_samples(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
  """Precision, recall, density, coverage (Naeem et al. 2020) from full distance matrices."""
  dist = lambda x, y: np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))
  r_real = np.sort(dist(real, real), axis=1)[:, k]       # k-th neighbour, itself excluded
  r_fake = np.sort(dist(fake, fake), axis=1)[:, k]
  d = dist(real, fake)                                    # (real, fake)
  inside = d < r_real[:, None]
  return {"precision": float(inside.any(0).mean()),
          "recall": float((d < r_fake[None, :]).any(1).mean()),
          "density": float(inside.sum(0).mean() / k),
          "coverage": float((d.min(1) < r_real).mean())}


@pytest.mark.slow
def test_evaluate_command_end_to_end(home, tiny_generator_dir, tmp_path, capsys, monkeypatch):
  """fid, kid and ppl with the converted recipe networks; prdc's glue with a stand-in feature
  function (VGG16 itself is covered by test_vgg16_fc2_parity, and is the slowest network).
  FID and PRDC are recomputed here from the features the command drew (real first)."""
  from jaxspatial import evaluate
  from jaxspatial.metrics import registry
  drawn = {"inception": [], "vgg16": []}

  def recorded(name, fn):
    def features(x):
      out = np.asarray(fn(x))
      drawn[name].append(out)
      return out
    return features

  monkeypatch.setattr(registry.features, "inception_features",
                      recorded("inception", registry.features.inception_features))
  monkeypatch.setattr(registry.features, "vgg16_features", recorded(
      "vgg16", lambda x: np.tile(np.asarray(x).mean(axis=(1, 2)), (1, 1366))[:, :4096]))
  out = tmp_path / "metrics.json"
  evaluate.main(["--checkpoint", str(tiny_generator_dir), "--metrics", "fid,kid,ppl,prdc",
                 "--data", "source=shapes,resolution=16,length=100", "--num", "8",
                 "--num-prdc", "8", "--batch-size", "8", "--kid-subsets", "3", "--out", str(out)])
  report = json.loads(out.read_text())
  assert report["errors"] == {}
  got = report["metrics"]
  assert set(got) == {"fid", "kid", "ppl_wend", "precision", "recall", "density", "coverage"}
  assert all(np.isfinite(v) for v in got.values()) and got["ppl_wend"] > 0
  assert "fid: " in capsys.readouterr().out
  assert [len(calls) for calls in drawn.values()] == [2, 2]        # real, then generated
  real, gen = (np.asarray(f[:8], np.float64) for f in drawn["inception"])
  assert got["fid"] == pytest.approx(_frechet_distance_of_samples(real, gen), rel=1e-3)
  real, gen = (np.asarray(f[:8], np.float64) for f in drawn["vgg16"])
  want = _prdc_of_samples(real, gen, k=5)
  assert {k: got[k] for k in want} == pytest.approx(want, abs=1e-9)
  stats = sorted(p.name for p in (home / "stats").iterdir())   # real stats cached per data spec
  assert len(stats) == 2 and stats[0].startswith("shapes-16-inception-")
  assert stats[1].startswith("shapes-16-vgg16-")


def test_evaluate_reports_what_each_metric_misses(tiny_generator_dir, tmp_path, monkeypatch):
  from jaxspatial import evaluate
  from jaxspatial.cli import UserError
  monkeypatch.setenv("JAXSPATIAL_HOME", str(tmp_path / "empty"))
  out = tmp_path / "metrics.json"
  with pytest.raises(UserError, match="2 of 2 metric"):
    evaluate.main(["--checkpoint", str(tiny_generator_dir), "--metrics", "fid,ppl", "--num", "4",
                   "--out", str(out)])
  errors = json.loads(out.read_text())["errors"]
  assert "pt_inception-2015-12-05-6726825d.pth" in errors["fid"]
  assert "--net lpips-vgg vgg.pth" in errors["ppl"]
  with pytest.raises(UserError, match="unknown metric"):
    evaluate.main(["--checkpoint", str(tiny_generator_dir), "--metrics", "fid,bogus"])


def test_evaluate_critic_fd(tiny_generator_dir, tmp_path, monkeypatch, capsys):
  """critic_fd needs no converted weights: a random 16-px StyleGAN2 with a discriminator judges
  itself; the metric exists, is finite and positive, and a missing --critic is reported. Output
  redirected, evaluate prints progress lines (here one per update) for itself and the metric."""
  monkeypatch.delenv("JAXSPATIAL_NO_PROGRESS", raising=False)
  monkeypatch.setenv("JAXSPATIAL_PROGRESS_SECONDS", "0")
  import jax.numpy as jnp
  from jaxspatial import families
  from jaxspatial import evaluate
  from jaxspatial import checkpoint
  cfg = checkpoint.read_config(tiny_generator_dir)
  d_vars = jax.jit(families.build_discriminator(cfg.model).init)(
      jax.random.key(1), jnp.zeros((1, 16, 16, 3)))
  critic = tmp_path / "critic"
  checkpoint.save_model_dir(critic, {**checkpoint.restore_models(tiny_generator_dir),
                                     "d": d_vars}, cfg)
  out = tmp_path / "metrics.json"
  args = ["--checkpoint", str(critic), "--metrics", "critic_fd", "--num", "24",
          "--data", "source=shapes,resolution=16,length=100", "--batch-size", "8",
          "--out", str(out)]
  evaluate.main(args + ["--critic", str(critic)])
  lines = capsys.readouterr().out.splitlines()
  assert any(re.match(r"evaluate critic_fd: \d+s elapsed \| fake critic features: 24 img", l)
             for l in lines), lines
  assert any(re.match(r"evaluate critic_fd: \d+s elapsed \(finished\)$", l) for l in lines), lines
  got = json.loads(out.read_text())["metrics"]
  assert set(got) == {"critic_fd", "critic_logit_fake", "critic_logit_real"}
  assert got["critic_fd"] > 0 and all(np.isfinite(v) for v in got.values())
  with pytest.raises(evaluate.cli.UserError, match="1 of 1 metric"):
    evaluate.main(args)
  assert "needs --critic" in json.loads(out.read_text())["errors"]["critic_fd"]
