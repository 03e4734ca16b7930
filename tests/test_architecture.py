"""The package's import graph: no cycles, and imports run one way between the layers.

Read with ``ast`` (nothing is imported, no jax): every ``import`` / ``from ... import`` in a
module counts, wherever it stands (a function-level import is an edge like any other),
relative imports resolved; ``from jaxspatial.models import stylegan2`` is an edge to the module
``jaxspatial.models.stylegan2``, ``from jaxspatial.models import build_generator`` one to the
package ``jaxspatial.models``. Strings looked up at run time with ``importlib``
(``families.py``'s ``"module:attr"`` entries) are not import edges; a third test checks that
every such string reaching *up* the layers is a declared seam (:data:`SEAMS`).

The table below is docs/architecture.md's "Which way imports run"; change both together.
"""

from __future__ import annotations

import ast
import collections
import functools
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "jaxspatial"

# Layers, low to high. A module may import its own layer and the layers its row names; "*" is
# anything. A module's layer is its first matching prefix (exact module or package) here, or
# "top" for every other top-level module (the commands and the public namespaces js.ssn,
# js.spatialgan, js.regressor, and jaxspatial/__init__ itself).
LAYER_OF = {
    "jaxspatial.errors": "errors",
    "jaxspatial.cli": "plumbing",
    "jaxspatial.imageio": "plumbing",
    "jaxspatial.checkpoint": "plumbing",
    "jaxspatial.families": "plumbing",   # looks up "module:attr" strings with importlib
    "jaxspatial.models": "models",
    "jaxspatial.nets": "nets",
    "jaxspatial.data": "data",
    "jaxspatial.losses": "losses",
    "jaxspatial.training": "training",
    "jaxspatial.api": "api",
    "jaxspatial.convert": "convert",
    "jaxspatial.edit": "edit",
    "jaxspatial.metrics": "metrics",
    "jaxspatial.studio": "top",
    "jaxspatial.benchmarks": "top",
    "jaxspatial.reproduction": "top",
}

_BASE = "nets data plumbing errors"
MAY_IMPORT = {
    "errors":   "",                               # a leaf: imports nothing of the package
    "plumbing": "errors",
    "models":   "errors",                         # Flax modules only
    "nets":     "errors plumbing",                # pretrained networks, the critic network
    "data":     "errors plumbing",
    "losses":   f"models {_BASE}",
    "training": f"losses models {_BASE}",         # never api, edit, metrics
    "api":      f"losses models {_BASE}",         # never training: js.load runs without it
    "convert":  f"models {_BASE}",
    "edit":     f"api losses models {_BASE}",
    "metrics":  f"edit api losses models {_BASE}",
    "top":      "*",                              # and nothing below imports "top"
}

# Import edges that break the table on purpose, each with its reason. Keep this short.
EXCEPTIONS: dict[tuple[str, str], str] = {}

# "module:attr" strings resolved at run time (importlib) that point up the layers: the declared
# seams, (module holding the string, target module) -> reason. families.py is the registry
# itself: every entry of it is a seam by design (docs/architecture.md, "The family registry").
SEAMS: dict[tuple[str, str], str] = {
    ("jaxspatial.api.model", "jaxspatial.edit.projection"):
        "GeneratorModel.project is js.load(...).project(...); the projector is edit code",
}
SEAM_MODULES = {"jaxspatial.families"}


def module_files() -> dict[str, pathlib.Path]:
  out = {}
  for path in sorted(PACKAGE.rglob("*.py")):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts.pop()
    out[".".join(parts)] = path
  return out


@functools.cache
def import_graph() -> dict[str, set[str]]:
  """{module: the package's modules it imports}, self-imports dropped."""
  files = module_files()

  def resolve(name: str) -> str | None:
    while name and name not in files:
      name = name.rpartition(".")[0]
    return name or None

  graph = {}
  for module, path in files.items():
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          up = package.split(".")[:len(package.split(".")) - node.level + 1]
          base = ".".join(up + ([base] if base else []))
        # ``from X import y``: the module X.y if there is one, else X.
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                 for alias in node.names]
      else:
        continue
      targets.update(t for n in names if n.split(".")[0] == "jaxspatial"
                     and (t := resolve(n)) is not None)
    graph[module] = targets - {module}
  return graph


def string_references() -> dict[str, set[str]]:
  """{module: the package's modules named by its ``"jaxspatial.x.y:attr"`` string constants}."""
  files = module_files()
  out = {}
  for module, path in files.items():
    refs = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Constant) and isinstance(node.value, str):
        target, colon, attr = node.value.partition(":")
        if colon and target in files and attr.isidentifier() and target != module:
          refs.add(target)
    out[module] = refs
  return out


def allowed(a: str, b: str) -> bool:
  may = MAY_IMPORT[layer(a)].split()
  return may == ["*"] or layer(b) == layer(a) or layer(b) in may


def layer(module: str) -> str | None:
  """The module's row of :data:`MAY_IMPORT`; None for a folder the table does not name yet."""
  for prefix, name in LAYER_OF.items():
    if module == prefix or module.startswith(prefix + "."):
      return name
  is_folder = (PACKAGE / module.split(".")[1]).is_dir() if "." in module else False
  return None if is_folder else "top"


def find_cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], set[str]]]:
  """(one shortest cycle, the modules of its component) per strongly connected component of
  more than one module."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def visit(v: str) -> None:   # Tarjan; the graph is a few hundred modules
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = set()
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.add(w)
        if w == v:
          break
      if len(component) > 1:
        components.append(component)

  for v in sorted(graph):
    if v not in index:
      visit(v)
  cycles = []
  for component in components:
    start = min(component)
    parent, queue = {start: None}, collections.deque([start])
    while queue:   # breadth first from start, back to it, inside the component
      v = queue.popleft()
      if start in graph[v]:
        path = [v]
        while parent[path[-1]] is not None:
          path.append(parent[path[-1]])
        cycles.append((path[::-1] + [start], component))
        break
      for w in sorted(graph[v] & component):
        if w not in parent:
          parent[w] = v
          queue.append(w)
  return cycles


def broken_edges(graph: dict[str, set[str]]) -> list[str]:
  out = []
  for a in sorted(graph):
    for b in sorted(graph[a]):
      if not allowed(a, b) and (a, b) not in EXCEPTIONS:
        out.append(f"{a} -> {b}  ({layer(a)} may not import {layer(b)})")
  return out


def test_graph_is_read():
  graph = import_graph()
  assert "jaxspatial.cli" in graph["jaxspatial.evaluate"]
  assert "jaxspatial.models.stylegan2" in graph["jaxspatial.models.ssn"]   # relative or not
  assert graph["jaxspatial.errors"] == set()
  assert set(MAY_IMPORT) == set(LAYER_OF.values()) | {"top"}
  unplaced = sorted(m for m in graph if layer(m) is None)
  assert not unplaced, f"give these folders a row in LAYER_OF (and the docs): {unplaced}"
  for a, b in EXCEPTIONS:
    assert b in graph.get(a, ()), f"stale exception {a} -> {b}: remove it from EXCEPTIONS"
  refs = string_references()
  for a, b in SEAMS:
    assert b in refs.get(a, ()), f"stale seam {a} -> {b}: remove it from SEAMS"


def test_no_import_cycle():
  cycles = find_cycles(import_graph())
  if cycles:
    pytest.fail("import cycles:\n" + "\n".join(
        f"  {' -> '.join(cycle)}   (its whole cycle: {sorted(component)})"
        for cycle, component in cycles), pytrace=False)


def test_imports_run_down_the_layers():
  broken = broken_edges(import_graph())
  if broken:
    pytest.fail("imports against the layer table (docs/architecture.md):\n"
                + "\n".join(f"  {edge}" for edge in broken), pytrace=False)


def test_run_time_references_up_the_layers_are_declared_seams():
  """A ``"module:attr"`` string resolved on first use is an import in all but name: one that
  reaches up the layers must be in :data:`SEAMS` (or live in the registry, families.py)."""
  undeclared = [f"  {a} -> {b}  ({layer(a)} names {layer(b)})"
                for a, targets in sorted(string_references().items()) if a not in SEAM_MODULES
                for b in sorted(targets) if not allowed(a, b) and (a, b) not in SEAMS]
  if undeclared:
    pytest.fail("undeclared run-time references up the layers:\n" + "\n".join(undeclared),
                pytrace=False)


# The picture of the layers in docs/architecture.md, drawn from the table above and the graph:
# a box per layer at its height, an arrow for every pair of layers that one import (or more)
# joins today; the arrows into plumbing and errors, which every layer uses, are left out. `python tests/test_architecture.py` redraws it; a test says when it is stale.
PICTURE = PACKAGE.parent / "docs" / "images" / "architecture-layers.svg"
ROWS = (("top",), ("metrics",), ("edit",), ("training", "api", "convert"), ("losses",),
        ("models", "nets", "data"), ("plumbing",), ("errors",))
BOX_W, BOX_H, GAP_X, GAP_Y, WIDTH = 150, 34, 40, 34, 640


def layer_links(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
  """{(layer a, layer b)}: the pairs of different layers an import joins, "top" and the
  arrows into plumbing and errors left out."""
  return {(layer(a), layer(b)) for a, targets in graph.items() for b in targets
          if layer(a) != layer(b) and layer(a) != "top"
          and layer(b) not in ("plumbing", "errors")}


def layers_svg(links: set[tuple[str, str]]) -> str:
  """The layers as boxes, low at the bottom, and ``links`` as arrows (grey: reaches past the
  row just below). Deterministic text, so the committed file can be compared."""
  assert {name for row in ROWS for name in row} == set(MAY_IMPORT)
  centre = {}
  for level, row in enumerate(ROWS):
    span = len(row) * BOX_W + (len(row) - 1) * GAP_X
    for i, name in enumerate(row):
      centre[name] = ((WIDTH - span) / 2 + i * (BOX_W + GAP_X) + BOX_W / 2,
                      20 + level * (BOX_H + GAP_Y) + BOX_H / 2)
  height = 40 + len(ROWS) * (BOX_H + GAP_Y) - GAP_Y
  rank = {name: level for level, row in enumerate(ROWS) for name in row}
  out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
         f'font-family="sans-serif" font-size="13">',
         '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
         'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>',
         f'<rect width="{WIDTH}" height="{height}" fill="white"/>']
  for a, b in sorted(links):
    (x1, y1), (x2, y2) = centre[a], centre[b]
    colour = "#222" if rank[b] == rank[a] + 1 else "#aaa"
    out.append(f'<line x1="{x1:.0f}" y1="{y1 + BOX_H / 2:.0f}" x2="{x2:.0f}" '
               f'y2="{y2 - BOX_H / 2:.0f}" stroke="{colour}" marker-end="url(#a)"/>')
  for name, (x, y) in centre.items():
    label = {"top": "commands · studio · benchmarks · reproduction (import anything)",
             "plumbing": "plumbing: cli · imageio · checkpoint · families (used by all)",
             "errors": "errors (used by all)"}.get(name, name)
    w = BOX_W if label == name else 460
    out.append(f'<rect x="{x - w / 2:.0f}" y="{y - BOX_H / 2:.0f}" width="{w}" '
               f'height="{BOX_H}" rx="6" fill="#eef3fb" stroke="#335"/>')
    out.append(f'<text x="{x:.0f}" y="{y + 5:.0f}" text-anchor="middle">{label}</text>')
  return "\n".join(out + ["</svg>", ""])


def test_layer_picture_is_current():
  want = layers_svg(layer_links(import_graph()))
  assert PICTURE.is_file() and PICTURE.read_text() == want, (
      f"{PICTURE.relative_to(PACKAGE.parent)} is stale: redraw it with "
      "python tests/test_architecture.py")


if __name__ == "__main__":
  PICTURE.write_text(layers_svg(layer_links(import_graph())))
  print(f"wrote {PICTURE}")
