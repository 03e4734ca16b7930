"""The metric registry that ``python -m jaxspatial.evaluate`` drives.

Each metric is ``fn(model, ctx) -> {name: value}`` registered under a name with the converted
networks it reads and whether it needs real images (:data:`METRICS`); :func:`evaluate` runs a
list of them and collects per-metric errors instead of stopping at the first. The metrics
themselves are documented in :mod:`jaxspatial.evaluate`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable, Iterator

import ml_collections
import numpy as np

from jaxspatial import errors, families
from jaxspatial.metrics import fid, ppl, prdc
from jaxspatial.nets import features, weights


@dataclasses.dataclass
class Context:
  """Everything a metric needs besides the model; ``cache`` shares work between metrics."""
  data_cfg: ml_collections.ConfigDict | None
  num: int
  num_real: int
  num_prdc: int
  batch_size: int
  seed: int
  truncation: float
  ppl_space: str = "w"
  ppl_sampling: str = "end"
  ppl_crop: bool = False
  ppl_epsilon: float = 1e-4
  kid_subsets: int = 100
  kid_subset_size: int = 1000
  prdc_k: int = 5
  num_distortion: int = 256
  num_comove: int = 256
  critic: str | None = None
  metric_names: tuple[str, ...] = ()
  cache: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Metric:
  """A registered metric: ``fn(model, ctx) -> dict``, the converted nets it reads, and
  whether it needs real data."""
  fn: Callable[[Any, Context], dict[str, float]]
  nets: tuple[str, ...]
  needs_data: bool


METRICS: dict[str, Metric] = {}


def register(name: str, nets: tuple[str, ...], needs_data: bool):
  """Decorator adding ``fn(model, ctx) -> dict`` to :data:`METRICS` under ``name``."""
  def wrap(fn: Callable[[Any, Context], dict[str, float]]):
    METRICS[name] = Metric(fn, nets, needs_data)
    return fn
  return wrap


def family_metric(model: Any, name: str, checkpoints: str) -> None:
  """UserError unless ``model``'s family lists metric ``name`` as its own
  (``families.Family.metrics``, e.g. SSN's distortion); ``checkpoints`` names those families
  for the message ("an SSN")."""
  if name not in families.get(model.kind).metrics:
    raise errors.UserError(f"the {name} metric needs {checkpoints} checkpoint, not {model.kind!r}")


# --------------------------------------------------------------------------- real data


def _parse_value(text: str) -> Any:
  low = text.lower()
  if low in ("true", "false"):
    return low == "true"
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return text


def data_config(config: ml_collections.ConfigDict, spec: str | None,
                resolution: int | None) -> ml_collections.ConfigDict | None:
  """The checkpoint's ``data`` section with ``key=value,...`` overrides from ``spec``.

  Without a ``data`` section, ``spec`` alone defines it (with the model's resolution unless
  given). Returns None when there is neither.
  """
  from jaxspatial.data import pipeline
  has_section = "data" in config and config.data is not None
  if not has_section and not spec:
    return None
  cfg = pipeline.default_data_config()
  if has_section:
    cfg.update(config.data.to_dict())
  elif resolution is not None:
    cfg.resolution = resolution
  for item in (spec or "").split(","):
    if not item.strip():
      continue
    if "=" not in item:
      raise errors.UserError(f"--data expects key=value pairs separated by commas, got {item!r}")
    key, value = (s.strip() for s in item.split("=", 1))
    if key not in cfg:
      raise errors.UserError(f"unknown data key {key!r} in --data; known: {', '.join(sorted(cfg))}")
    cfg[key] = _parse_value(value)
  pipeline.validate_data_config(cfg)
  return cfg


# --------------------------------------------------------------------------- image streams


def generated_batches(model: Any, ctx: Context, num: int) -> Iterator[np.ndarray]:
  """``num`` generated images in batches: z from ``sample_z(ctx.seed + i)`` for batch i,
  ``noise="random"``, ``ctx.truncation``."""
  for i, start in enumerate(range(0, num, ctx.batch_size)):
    n = min(ctx.batch_size, num - start)
    z = model.sample_z(ctx.seed + i, n)
    yield model.generate(z, truncation=ctx.truncation, noise="random", seed=ctx.seed + i)


def real_count(ctx: Context, wanted: int) -> int:
  """``wanted`` capped at the dataset's size (each real image is used at most once)."""
  from jaxspatial.data import pipeline
  return min(wanted, len(pipeline.make_source(ctx.data_cfg)))


def real_batches(ctx: Context) -> Iterator[np.ndarray]:
  """The real images of the data spec, shuffled by ``ctx.seed`` (endless; callers cap)."""
  from jaxspatial.data import pipeline
  it = pipeline.make_iterator(ctx.data_cfg, global_batch_size=ctx.batch_size, seed=ctx.seed)
  try:
    for batch in it:
      yield batch["image"]
  finally:
    it.close()


def _data_fields(ctx: Context) -> dict[str, Any]:
  cfg = ctx.data_cfg.to_dict()
  for runtime_only in ("num_workers", "prefetch"):
    cfg.pop(runtime_only, None)
  return cfg


def real_stats(ctx: Context, net: str, num: int, dim: int, keep_features: bool,
               feature_fn: Callable[[np.ndarray], np.ndarray]) -> fid.FeatureStats:
  """Real-image feature stats, cached as ``$JAXSPATIAL_HOME/stats/<key>.npz``."""
  num = real_count(ctx, num)
  key = fid.stats_key(f"{ctx.data_cfg.source}-{ctx.data_cfg.resolution}-{net}",
                      data=_data_fields(ctx), num=num, seed=ctx.seed, features=keep_features)
  return fid.cached_stats(key, lambda: fid.compute_feature_stats(
      real_batches(ctx), feature_fn, dim=dim, max_items=num, keep_features=keep_features,
      desc=f"real {net} features"))


# --------------------------------------------------------------------------- metrics


def _inception_pair(model: Any, ctx: Context) -> tuple[fid.FeatureStats, fid.FeatureStats]:
  """(real, generated) Inception stats, computed once for fid and kid together."""
  if "inception" not in ctx.cache:
    keep = "kid" in ctx.metric_names
    fn = features.inception_features
    real = real_stats(ctx, "inception", ctx.num_real, 2048, keep, fn)
    gen = fid.compute_feature_stats(generated_batches(model, ctx, ctx.num), fn, dim=2048,
                                    max_items=ctx.num, keep_features=keep,
                                    desc="generated inception features")
    ctx.cache["inception"] = (real, gen)
  return ctx.cache["inception"]


@register("fid", nets=("inception",), needs_data=True)
def fid_metric(model: Any, ctx: Context) -> dict[str, float]:
  real, gen = _inception_pair(model, ctx)
  return {"fid": fid.fid_from_stats(gen, real)}


@register("kid", nets=("inception",), needs_data=True)
def kid_metric(model: Any, ctx: Context) -> dict[str, float]:
  real, gen = _inception_pair(model, ctx)
  return {"kid": fid.kid(gen.all_features(), real.all_features(), num_subsets=ctx.kid_subsets,
                         max_subset_size=ctx.kid_subset_size, seed=ctx.seed)}


@register("ppl", nets=("lpips-vgg",), needs_data=False)
def ppl_metric(model: Any, ctx: Context) -> dict[str, float]:
  return {f"ppl_{ctx.ppl_space}{ctx.ppl_sampling}": _ppl(model, ctx)}


def critic_distance(path: str | pathlib.Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """``d(x, y) -> (n,)``: LPIPS's form with uniform channel weights on the unit-normalised
  spatial block features of a critic (checkpoint or critic file):
  :func:`jaxspatial.nets.critic.feature_distance` of :func:`~jaxspatial.nets.critic.feature_maps`,
  the stand-in for LPIPS where no VGG weights exist (``ppl_critic``)."""
  import jax
  from jaxspatial.nets import critic as critic_lib
  if str(path).endswith(critic_lib.CRITIC_FILE_SUFFIX):
    if not pathlib.Path(path).is_file():
      raise errors.UserError(f"critic file {path} does not exist")
    config, d_vars = critic_lib.read_critic_file(path)
    d = families.build_discriminator(config.model)
  else:
    from jaxspatial.api.model import load
    model = load(path)
    d, d_vars = getattr(model, "discriminator", None), getattr(model, "d_vars", None)
    if d is None or d_vars is None:
      raise errors.UserError(f"the critic {path} holds no discriminator ('d')")
  fn = jax.jit(lambda x, y: critic_lib.feature_distance(critic_lib.feature_maps(d, d_vars, x),
                                                        critic_lib.feature_maps(d, d_vars, y)))
  return lambda x, y: np.asarray(fn(np.asarray(x, np.float32), np.asarray(y, np.float32)))


@register("ppl_critic", nets=(), needs_data=False)
def ppl_critic_metric(model: Any, ctx: Context) -> dict[str, float]:
  """PPL with the critic's features (``--critic``) standing in for LPIPS (no downloaded
  weights): :func:`critic_distance`; reported as ``ppl_critic_<space><sampling>``."""
  if not ctx.critic:
    raise errors.UserError("ppl_critic needs --critic DIR|FILE: the discriminator whose "
                           "features stand in for LPIPS")
  resolution = open_critic(ctx.critic).resolution
  if resolution != model.resolution:
    raise errors.UserError(f"the critic scores {resolution} px images, the model makes "
                           f"{model.resolution} px")
  distance = critic_distance(ctx.critic)
  return {f"ppl_critic_{ctx.ppl_space}{ctx.ppl_sampling}": _ppl(model, ctx, distance)}


def _ppl(model: Any, ctx: Context, distance: Callable | None = None) -> float:
  """PPL of ``model`` under ``ctx``'s space, sampling, epsilon and crop; ``distance``:
  LPIPS-VGG when None."""
  def sample_z(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    z = model.sample_z(seed, 2 * n)
    return z[:n], z[n:]

  if ctx.ppl_space == "w":
    def sample(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
      z0, z1 = sample_z(seed, n)
      return model.mapping(z0), model.mapping(z1)

    def generate(w: np.ndarray) -> np.ndarray:   # the same w for every layer
      return model.synthesize(np.repeat(w[:, None], model.num_ws, axis=1), noise="const")
  else:
    sample = sample_z

    def generate(z: np.ndarray) -> np.ndarray:
      return model.generate(z, noise="const")

  return ppl.perceptual_path_length(
      sample, generate, num_samples=ctx.num, batch_size=ctx.batch_size, space=ctx.ppl_space,
      sampling=ctx.ppl_sampling, epsilon=ctx.ppl_epsilon, crop=ctx.ppl_crop, seed=ctx.seed,
      lpips_fn=distance)


@register("prdc", nets=("vgg16",), needs_data=True)
def prdc_metric(model: Any, ctx: Context) -> dict[str, float]:
  fn = features.vgg16_features
  real = real_stats(ctx, "vgg16", ctx.num_prdc, 4096, True, fn)
  gen = fid.compute_feature_stats(generated_batches(model, ctx, ctx.num_prdc), fn, dim=4096,
                                  max_items=ctx.num_prdc, keep_features=True,
                                  desc="generated vgg16 features")
  return prdc.prdc(real.all_features(), gen.all_features(), nearest_k=ctx.prdc_k)


def open_critic(path: str | pathlib.Path):
  """The :class:`~jaxspatial.nets.critic.Critic` of a checkpoint directory (its
  discriminator) or of a critic file (``.npz``, :func:`~jaxspatial.nets.critic.save_critic_file`)."""
  from jaxspatial.metrics.critic import load_critic_file
  from jaxspatial.nets import critic as critic_lib
  if str(path).endswith(critic_lib.CRITIC_FILE_SUFFIX):
    if not pathlib.Path(path).is_file():
      raise errors.UserError(f"critic file {path} does not exist")
    return load_critic_file(path)
  from jaxspatial.api.model import load
  return critic_lib.critic_from_model(load(path))


@register("critic_fd", nets=(), needs_data=True)
def critic_fd_metric(model: Any, ctx: Context) -> dict[str, float]:
  """Fréchet distance in a trained discriminator's features (``--critic DIR|FILE``)."""
  if not ctx.critic:
    raise errors.UserError("critic_fd needs --critic DIR: a trained StyleGAN2-family checkpoint "
                        "with a discriminator at the generator's resolution (or a critic "
                        "file, .npz)")
  critic = open_critic(ctx.critic)
  if critic.resolution != model.resolution:
    raise errors.UserError(f"the critic scores {critic.resolution} px images, the model makes "
                        f"{model.resolution} px")
  logits = {"fake": [], "real": []}

  def scored(batches, kind, n):    # the first n images, their logits recorded on the way
    seen = 0
    for x in batches:
      if seen >= n:
        return
      x = x[:n - seen]
      seen += len(x)
      logits[kind].append(critic.logits(x))
      yield x

  num_real = real_count(ctx, ctx.num_real)
  stats = {kind: fid.compute_feature_stats(scored(batches, kind, n), critic.features,
                                           dim=critic.dim, desc=f"{kind} critic features")
           for kind, batches, n in (("fake", generated_batches(model, ctx, ctx.num), ctx.num),
                                    ("real", real_batches(ctx), num_real))}
  return {"critic_fd": fid.fid_from_stats(stats["fake"], stats["real"]),
          **{f"critic_logit_{k}": float(np.concatenate(v).mean()) for k, v in logits.items()}}


@register("distortion", nets=(), needs_data=False)
def distortion_metric(model: Any, ctx: Context) -> dict[str, float]:
  """SSN block-resampling distortion (Table 2; definition in docs/ssn.md)."""
  family_metric(model, "distortion", "an SSN")
  from jaxspatial.metrics.distortion import distortion
  r = distortion(model, num_samples=ctx.num_distortion, seed=ctx.seed,
                 truncation=ctx.truncation)
  return {"distortion": r["distortion"], "distortion_ci95": r["ci95"]}


@register("comove", nets=(), needs_data=False)
def comove_metric(model: Any, ctx: Context) -> dict[str, float]:
  """SpatialGAN co-move ratio (Table I) with the shapes-dataset object locator."""
  family_metric(model, "comove", "a SpatialGAN")
  from jaxspatial.metrics import comove
  return comove.comove_ratio(model, num=ctx.num_comove, seed=ctx.seed,
                             batch_size=ctx.batch_size, truncation=ctx.truncation)


def metric_names(text: str) -> tuple[str, ...]:
  """``"fid,kid"`` -> ("fid", "kid"); UserError for unknown or no names."""
  names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
  unknown = [n for n in names if n not in METRICS]
  if unknown or not names:
    raise errors.UserError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(METRICS)}")
  return names


def _missing_requirements(name: str, ctx: Context) -> str | None:
  metric = METRICS[name]
  for net in metric.nets:
    if not weights.converted_path(net).is_file():
      return f"missing {weights.converted_path(net)}: {weights.how_to_get(net)}"
  if metric.needs_data and ctx.data_cfg is None:
    return ("the checkpoint's config has no data section; give the real images with "
            "--data source=folder,path=DIR (or zip/tfds/shapes)")
  return None


def evaluate(model: Any, ctx: Context) -> tuple[dict[str, float], dict[str, str]]:
  """Runs ``ctx.metric_names``; returns (results, errors by metric name)."""
  results: dict[str, float] = {}
  failed: dict[str, str] = {}   # not "errors": that is the module whose UserError is caught
  for name in ctx.metric_names:
    problem = _missing_requirements(name, ctx)
    if problem is None:
      try:
        results.update(METRICS[name].fn(model, ctx))
        continue
      except errors.UserError as e:
        problem = str(e)
    failed[name] = problem
  return results, failed
