"""StyleGAN2 modules: init honours its key, abstract init, shapes, gradients under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial import families
from jaxspatial import models
from jaxspatial.models import stylegan2 as sg2

CFG = models.stylegan2_model_config(16, z_dim=16, w_dim=16, n_mlp=2, channel_base=128,
                                    channel_max=16)


@pytest.fixture(scope="module")
def nets():
  g, d = families.build_generator(CFG), families.build_discriminator(CFG)
  z = jnp.zeros((2, 16))
  return g, d, g.init(jax.random.key(0), z), d.init(jax.random.key(1), jnp.zeros((2, 16, 16, 3)))


def test_init_honours_key_and_eval_shape(nets):
  g, _, v0, _ = nets
  v0b = g.init(jax.random.key(0), jnp.zeros((2, 16)))
  v1 = g.init(jax.random.key(2), jnp.zeros((2, 16)))
  leaves = lambda v: jax.tree.leaves(v["params"])
  assert all(np.array_equal(a, b) for a, b in zip(leaves(v0), leaves(v0b)))
  assert not np.array_equal(v0["params"]["synthesis"]["const"], v1["params"]["synthesis"]["const"])
  assert not np.array_equal(v0["buffers"]["synthesis"]["noise_0"],
                            v1["buffers"]["synthesis"]["noise_0"])
  abstract = jax.eval_shape(g.init, jax.random.key(0), jnp.zeros((2, 16)))
  assert jax.tree.map(lambda a: a.shape, abstract) == jax.tree.map(lambda a: a.shape, v0)


def test_shapes_and_noise_modes(nets):
  g, d, gv, dv = nets
  z = jax.random.normal(jax.random.key(3), (2, 16))
  assert g.apply(gv, z).shape == (2, 16, 16, 3)
  assert sg2.num_ws(16) == 6
  const = g.apply(gv, z, noise_mode="const")
  none = g.apply(gv, z, noise_mode="none")
  rand = g.apply(gv, z, noise_mode="random", rngs={"noise": jax.random.key(4)})
  np.testing.assert_array_equal(const, g.apply(gv, z, noise_mode="const"))
  # noise strengths init at 0, so the modes agree until trained; perturb one to see them differ
  gv2 = jax.tree.map(lambda a: a, gv)
  gv2["params"]["synthesis"]["conv1"]["noise"]["weight"] = jnp.ones(())
  assert not np.allclose(g.apply(gv2, z, noise_mode="const"), g.apply(gv2, z, noise_mode="none"))
  assert not np.allclose(g.apply(gv2, z, noise_mode="random", rngs={"noise": jax.random.key(4)}),
                         g.apply(gv2, z, noise_mode="const"))
  np.testing.assert_allclose(const, none, atol=0)
  assert rand.shape == const.shape
  assert d.apply(dv, const).shape == (2,)


def test_gradients_flow_through_g_and_d_under_jit(nets):
  g, d, gv, dv = nets

  @jax.jit
  def grads(gp, dp, z):
    def loss(gp, dp):
      img = g.apply({**gv, "params": gp}, z)
      return jax.nn.softplus(-d.apply({"params": dp}, img)).mean()
    return jax.grad(loss, argnums=(0, 1))(gp, dp)

  gg, dg = grads(gv["params"], dv["params"], jax.random.normal(jax.random.key(5), (4, 16)))
  for name, tree in (("G", gg), ("D", dg)):
    norms = [float(jnp.abs(x).sum()) for x in jax.tree.leaves(tree)]
    assert all(np.isfinite(norms)), name
    assert sum(n > 0 for n in norms) >= len(norms) - 4, name  # noise strengths may be 0-grad
  assert float(jnp.abs(gg["mapping"]["dense_1"]["weight"]).sum()) > 0


def test_resolution_validation():
  with pytest.raises(ValueError, match="power of two"):
    sg2.log2_resolution(24)
