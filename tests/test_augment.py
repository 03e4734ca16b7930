"""AugmentPipe against stylegan2-ada-pytorch's, and the ADA p-update against the official loop.

The oracle is ``reference/stylegan2_ada/augment`` (README, SPEC.md there). Every ``.npz``/``.csv``
file found in it is checked: each record its ``manifest.json`` describes is looked up in the
file that holds it, so a twin oracle with other files, sizes or percentiles is checked as well,
and a key that no record explains fails the test. Records with the same pipe and input batch
share one jitted program (debug_percentile and p are traced).
"""

import collections
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shared_paths import REFERENCE
from jaxspatial.training.augment import AugmentPipe, ada_adjust

AUG = REFERENCE / "stylegan2_ada" / "augment"
INTERMEDIATES = ("geom", "ginv", "theta", "C", "pad")
MATRICES = ("ginv", "theta", "C")


def _manifest() -> dict:
  path = AUG / "manifest.json"
  return json.loads(path.read_text()) if path.is_file() else {}


def _record_files() -> list[str]:
  skip = {"inputs.npz"}
  return sorted(f.name for f in AUG.glob("*.npz")
                if f.name not in skip and not f.name.startswith("ada_"))


def _records() -> dict:
  """name -> manifest entry, for every section whose entries describe a pipe call."""
  out = {}
  for section in _manifest().values():
    if isinstance(section, dict):
      out.update({k: v for k, v in section.items() if isinstance(v, dict) and "kwargs" in v})
  return out


def _cases() -> list:
  """(file, kwargs json, batch) groups of the records each file holds."""
  cases = []
  for fname in _record_files():
    with np.load(AUG / fname) as data:
      keys = set(data.files)
    groups = collections.defaultdict(list)
    for name, rec in _records().items():
      if name in keys or f"{name}__out" in keys:
        batch = rec.get("batch") or name.split("__")[1]
        groups[(json.dumps(rec["kwargs"], sort_keys=True), batch)].append(name)
    cases += [pytest.param(fname, kw, batch, names,
                           id=f"{fname}-{batch}-{'-'.join(json.loads(kw))[:40]}")
              for (kw, batch), names in sorted(groups.items())]
  return cases


@pytest.fixture(scope="module")
def inputs():
  with np.load(AUG / "inputs.npz") as data:
    return {k: data[k].transpose(0, 2, 3, 1) for k in data.files}


def _nhwc(a: np.ndarray) -> np.ndarray:
  return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def _err(got, ref) -> float:
  """max|got - ref| / max(1, max|ref|)."""
  got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
  assert got.shape == ref.shape, (got.shape, ref.shape)
  return float(np.abs(got - ref).max() / max(1.0, np.abs(ref).max()))


def test_oracle_is_present():
  assert AUG.is_dir(), f"augment oracle missing: {AUG}"
  assert _record_files() and _cases(), "no augment records found"


@pytest.mark.parametrize("fname,kwargs,batch,names", _cases())
def test_augment_pipe_matches_official(fname, kwargs, batch, names, inputs):
  """Outputs within 1e-4, G_inv / theta / C within 1e-5 (x max(1, max|ref|)), pad within 1;
  random records replay their recorded draws, whose labels, samplers and shapes must be ours."""
  pipe = AugmentPipe(**json.loads(kwargs))
  x = inputs[batch]
  records = _records()
  run = jax.jit(pipe.trace)
  with np.load(AUG / fname) as data:
    explained = set()
    for name in names:
      rec = records[name]
      if rec.get("debug_percentile") is None:
        draws_meta = rec["draws"]
        assert [(d["label"], d["sampler"], tuple(d["shape"])) for d in draws_meta] == \
            pipe.draw_specs(x.shape[0], x.shape[-1])
        draws = {d["label"]: data[d["key"]] for d in draws_meta}
        explained |= {d["key"] for d in draws_meta}
        got = run(x, draws, rec["p"])
        out_key = f"{name}__out"
      else:
        # SPEC 2.1: with debug_percentile the output depends on neither the draws nor p.
        draws = pipe.draw(jax.random.key(0), x.shape[0], x.shape[-1])
        got = run(x, draws, rec["p"], rec["debug_percentile"])
        out_key = name
      explained.add(out_key)
      assert _err(got["out"], _nhwc(data[out_key])) <= 1e-4, (name, "out")
      for what in INTERMEDIATES:
        key = f"{name}__{what}"
        if key not in data.files:
          continue
        explained.add(key)
        ref = _nhwc(data[key])
        if what == "pad":
          assert np.abs(np.asarray(got["pad"]) - ref).max() <= 1, (name, got["pad"], ref)
        else:
          assert _err(got[what], ref) <= (1e-5 if what in MATRICES else 1e-4), (name, what)
    prefixes = tuple(f"{n}__" for n in names)
    mine = {k for k in data.files if k in names or k.startswith(prefixes)}
    assert mine == explained, sorted(mine - explained)


def test_every_oracle_key_belongs_to_a_record():
  names = set(_records())
  for fname in _record_files():
    with np.load(AUG / fname) as data:
      orphans = [k for k in data.files if k not in names and k.split("__")[0] not in names
                 and "__".join(k.split("__")[:3]) not in names]
    assert not orphans, (fname, orphans[:5])


def _ada_tables() -> list:
  return sorted(f.name for f in AUG.glob("ada_*") if f.suffix in (".npz", ".csv"))


def _load_table(fname: str) -> dict:
  if fname.endswith(".npz"):
    with np.load(AUG / fname) as data:
      return {k: data[k] for k in ("n_signs", "n_pos", "n_neg", "p", "p0")}
  rows = np.genfromtxt(AUG / fname, delimiter=",", names=True)
  return {"n_signs": rows["n_signs"], "n_pos": rows["n_pos"], "n_neg": rows["n_neg"],
          "p": rows["p_after"], "p0": np.float32(0)}


@pytest.mark.parametrize("fname", _ada_tables())
def test_ada_p_update_matches_official_table(fname):
  """p after each interval, from the interval's sign counts, bit for bit (float32 p)."""
  cfg = _manifest()["ada"]
  table = _load_table(fname)
  assert float(table["p0"]) == cfg["augment_p"]
  update = jax.jit(lambda p, s, n: ada_adjust(p, s, n, cfg["ada_target"], cfg["batch_size"],
                                              cfg["ada_interval"], cfg["ada_kimg"]))
  sums = (table["n_pos"].astype(np.int64) - table["n_neg"].astype(np.int64)).astype(np.int32)
  counts = table["n_signs"].astype(np.int32)
  assert counts.min() > 0

  def body(p, xs):
    p = update(p, *xs)
    return p, p

  _, ps = jax.lax.scan(body, jnp.float32(cfg["augment_p"]), (sums, counts))
  np.testing.assert_array_equal(np.asarray(ps), table["p"].astype(np.float32))


@pytest.fixture(scope="module")
def x32(inputs):
  return inputs["x32"]


def test_debug_percentile_ignores_key_and_p(x32):
  """SPEC 2.1: every value is fixed by q, so neither the key nor p changes the output."""
  pipe = AugmentPipe("bgc")
  run = jax.jit(pipe.__call__)
  a = run(x32, jax.random.key(1), 1.0, 0.3)
  b = run(x32, jax.random.key(2), 0.0, 0.3)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.abs(np.asarray(a) - x32).max() > 0.1


def test_random_mode_gates_follow_p(x32):
  """p = 0: every gate fails, so only the (identity) resampling remains; p = 1 changes images,
  and two keys give two different augmentations."""
  pipe = AugmentPipe("bgc")
  run = jax.jit(pipe.__call__)
  ident = np.asarray(run(x32, jax.random.key(3), 0.0))
  assert np.abs(ident - x32).max() < 1e-5
  a, b = (np.asarray(run(x32, jax.random.key(k), 1.0)) for k in (4, 5))
  assert np.abs(a - x32).max() > 0.1 and np.abs(a - b).max() > 0.1


def test_presets_and_keywords():
  bgc = AugmentPipe("bgc")
  assert bgc.xflip == bgc.saturation == 1 and bgc.geometric and bgc.colour
  blit = AugmentPipe("blit")
  assert (blit.xflip, blit.rotate90, blit.xint, blit.scale, blit.brightness) == (1, 1, 1, 0, 0)
  assert not AugmentPipe("geom").xint and AugmentPipe("geom").xfrac == 1
  assert not AugmentPipe("color").geometric
  one = AugmentPipe(xflip=1)
  assert one.xflip == 1 and not one.colour and one.xint_max == 0.125 and one.saturation_std == 1
  assert [s[0] for s in one.draw_specs(2)] == ["xflip.value", "xflip.gate"]
  with pytest.raises(ValueError, match="unknown augment spec"):
    AugmentPipe("bgcx")
  with pytest.raises(ValueError, match="not implemented"):
    AugmentPipe(noise=1)


def test_gradient_flows_to_the_input(x32):
  """D's loss is differentiated through the pipe (the generator's and R1's gradients)."""
  pipe = AugmentPipe("bgc")
  grad = jax.jit(jax.grad(lambda x: jnp.sum(pipe(x, jax.random.key(6), 1.0) ** 2)))(x32)
  assert np.isfinite(np.asarray(grad)).all() and np.abs(np.asarray(grad)).max() > 0


def test_ada_state_counts_finite_signs_and_moves_p_every_interval():
  """next_state: the accumulator gathers the steps' signs, p moves by batch * interval /
  (speed_kimg * 1000) at the interval's last step and the accumulator restarts; NaN logits
  (a faulty batch) are not counted, and an interval with no sign leaves p where it was."""
  import ml_collections
  from jaxspatial.training import augment
  assert [float(v) for v in augment.sign_statistics(jnp.array([1.0, -2, jnp.nan, 3, jnp.inf]))] \
      == [1.0, 3.0]
  config = ml_collections.ConfigDict({"batch_size": 8, "augment": augment.default_config()})
  config.augment.update(kind="ada", p=0.5, interval=2)
  state = augment.init_state(config)
  state, m = augment.next_state(config, state, jnp.float32(8), jnp.float32(8), jnp.int32(0))
  assert (float(state["p"]), float(state["sign_count"]), float(m["augment/r_t"])) == (0.5, 8, 1)
  state, m = augment.next_state(config, state, jnp.float32(-2), jnp.float32(8), jnp.int32(1))
  assert float(m["augment/r_t"]) == 6 / 16 and float(m["augment/signs_counted"]) == 16
  assert float(state["p"]) == np.float32(0.5) - np.float32(16 / 500_000)   # 0.375 < 0.6: down
  assert float(state["sign_count"]) == float(state["sign_sum"]) == 0
  p = state["p"]
  state, _ = augment.next_state(config, state, jnp.float32(0), jnp.float32(0), jnp.int32(3))
  assert state["p"] == p and np.isfinite(float(state["p"]))
  config.augment.kind = "fixed"
  state, _ = augment.next_state(config, state, jnp.float32(8), jnp.float32(8), jnp.int32(5))
  assert state["p"] == p


@pytest.mark.parametrize("pair,shape", [
    ("upsample2x", (2, 7, 9, 3)), ("downsample2x_crop", (2, 26, 30, 3))])
def test_resampling_gradients_are_the_adjoints(pair, shape):
  """The x2 resampling's hand-written backward passes: <f(x), c> = <x, f^T(c)> through
  jax.vjp, and the transpose's own vjp is f again (R1 differentiates through it)."""
  from jaxspatial.training import augment
  f, f_t = getattr(augment, pair), getattr(augment, pair + "_transpose")
  rng = np.random.default_rng(0)
  for axis in (1, 2):
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    y, vjp = jax.vjp(lambda x: f(x, axis), x)
    c = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    (xt,) = vjp(c)
    np.testing.assert_allclose(float(jnp.vdot(y, c)), float(jnp.vdot(x, xt)), rtol=1e-5)
    _, vjp_t = jax.vjp(lambda c: f_t(c, axis), c)
    np.testing.assert_allclose(vjp_t(x)[0], y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family,preset,kind", [
    ("stylegan2", "paper256", "ada"), ("ssn", "paper256", "ada"), ("spatialgan", "paper256", "none"),
    ("stylegan2", "demo", "none"), ("stylegan2", "tiny", "none"), ("ssn", "demo", "none"),
])
def test_presets_augment_as_the_official_commands(family, preset, kind):
  """stylegan2-ada's paper256 trains with ADA (bgc, target 0.6, 500 kimg, interval 4, p0 0);
  the official EqGAN-SA command with --aug=noaug; the small presets augment nothing."""
  from jaxspatial.training import config_lib
  aug = config_lib.load(family, preset).augment
  assert aug.kind == kind
  assert (aug.spec, aug.p, aug.target, aug.speed_kimg, aug.interval) == ("bgc", 0.0, 0.6, 500, 4)


def test_the_progress_line_shows_p(monkeypatch, capsys):
  from jaxspatial.training import logging as log_lib
  monkeypatch.delenv("JAXSPATIAL_NO_PROGRESS", raising=False)
  monkeypatch.setenv("JAXSPATIAL_PROGRESS_SECONDS", "0")
  progress = log_lib.Progress(4, 8)
  progress.update(1, {"d_loss": 0.5, "augment/p": 0.125, "augment/r_t": 0.75})
  progress.update(2, {"d_loss": 0.5})
  progress.close()
  lines = capsys.readouterr().out.splitlines()
  assert ", p=0.125, " in lines[0] and "r_t" not in lines[0] and "p=" not in lines[1], lines
