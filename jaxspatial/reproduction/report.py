"""The page a reproduction writes: mean ± 95 % Student-t interval across seeds per setting, the
per-run numbers, the exact commands, wall times, and an SVG figure (no plotting dependency).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Sequence

import numpy as np
from scipy import stats

from jaxspatial.reproduction import ledger

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
  """(mean, half-width of the Student-t ``level`` interval, n) of the finite ``values``;
  the half-width is nan for n < 2."""
  v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
  n = len(v)
  if n == 0:
    return math.nan, math.nan, 0
  if n == 1:
    return float(v[0]), math.nan, 1
  half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n)
  return float(v.mean()), float(half), n


@dataclasses.dataclass(frozen=True)
class Column:
  """A measured quantity: ``key`` in each run's results, table ``header``, ``fmt``."""
  key: str
  header: str
  fmt: str = ".3f"


@dataclasses.dataclass
class Row:
  """One setting: its label, ``(unit row, results)`` per seed, and the paper's figure for it.
  ``trained=False``: a setting without training of its own (e.g. pixel paste measured beside
  each seed's runs), whose train-seconds cells read "–"."""
  label: str
  runs: list[tuple[ledger.Row, dict[str, float]]]
  paper: str = ""
  trained: bool = True

  def values(self, key: str) -> list[float]:
    return [r.get(key, math.nan) for _, r in self.runs]


@dataclasses.dataclass(frozen=True)
class Figure:
  """A scatter of ``y`` against ``x`` (column keys): per-run points and, per setting, the
  mean with 95 % intervals on both axes."""
  x: Column
  y: Column
  log_x: bool = False
  caption: str = ""


@dataclasses.dataclass(frozen=True)
class Curves:
  """A quantity over training: each run's results hold it as ``{prefix}{step}`` keys (the
  same steps for every run of a setting). Drawn as faint per-run lines and each setting's
  mean across seeds; ``reference`` adds a dashed horizontal line (e.g. a controller's
  target). Written as ``NAME-{suffix}.svg`` below the page's figure."""
  prefix: str
  header: str
  suffix: str
  reference: float | None = None
  caption: str = ""


def _cell(values: Sequence[float], fmt: str) -> str:
  mean, half, n = interval(values)
  if n == 0:
    return "–"
  if n == 1:
    return f"{mean:{fmt}} (1 seed)"
  return f"{mean:{fmt}} ± {half:{fmt}}"


def _number(value: float | None, fmt: str) -> str:
  return "–" if value is None or not np.isfinite(value) else f"{value:{fmt}}"


def _seconds(run: ledger.Row) -> str:
  return "reused" if run.train_seconds is None else f"{run.train_seconds:.0f}"


def tables(columns: Sequence[Column], rows: Sequence[Row]) -> list[str]:
  """The summary table (mean ± 95 % CI per setting) and the per-run table, as lines."""
  paper = any(r.paper for r in rows)
  head = ["setting", "seeds", *(c.header for c in columns), *(["paper"] if paper else []),
          "train s / run"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    train = [run.train_seconds for run, _ in r.runs]
    cells = [r.label, str(len(r.runs)), *(_cell(r.values(c.key), c.fmt) for c in columns),
             *([r.paper] if paper else []),
             "–" if not r.trained else
             _cell(train, ".0f") if all(t is not None for t in train) else "reused"]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Per run:", ""]
  head = ["setting", "seed", *(c.header for c in columns), "train s", "eval s"]
  lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    for run, res in r.runs:
      cells = [r.label, str(run.seed),
               *(_number(res.get(c.key), c.fmt) for c in columns),
               _seconds(run) if r.trained else "–",
               _number(res.get("eval_seconds"), ".0f")]
      lines.append("| " + " | ".join(cells) + " |")
  return lines


@dataclasses.dataclass(frozen=True)
class Paired:
  """The paired difference ``b − a`` of ``column`` between two settings (row labels), over
  the seeds both have: with ``log``, the log-ratio ``ln(b / a)`` (for quantities that
  differ by factors), reported back as the ratio ``exp(mean)`` with its interval."""
  a: str
  b: str
  column: Column
  log: bool = False


def paired_cell(rows: Sequence[Row], pair: Paired) -> tuple[str, int]:
  """(the cell text, number of pairs) of ``pair`` over ``rows``."""
  by_label = {r.label: {run.seed: res.get(pair.column.key, math.nan) for run, res in r.runs}
              for r in rows}
  a, b = by_label.get(pair.a, {}), by_label.get(pair.b, {})
  seeds = sorted(set(a) & set(b))
  if pair.log:
    diffs = [math.log(b[s] / a[s]) if a[s] > 0 and b[s] > 0 else math.nan for s in seeds]
    mean, half, n = interval(diffs)
    if n == 0:
      return "–", 0
    if n == 1:
      return f"× {math.exp(mean):.3g} (1 pair)", 1
    return (f"× {math.exp(mean):.3g} [{math.exp(mean - half):.3g}, "
            f"{math.exp(mean + half):.3g}]", n)
  mean, half, n = interval([b[s] - a[s] for s in seeds])
  fmt = pair.column.fmt
  if n == 0:
    return "–", 0
  if n == 1:
    return f"{mean:+{fmt}} (1 pair)", 1
  return f"{mean:+{fmt}} ± {half:{fmt}}", n


def paired_table(rows: Sequence[Row], pairs: Sequence[Paired]) -> list[str]:
  """Markdown lines: one line per pair, its difference (or ratio) with a 95 % interval."""
  lines = ["| comparison (same seed) | pairs | difference or ratio, 95 % CI |", "|---|---|---|"]
  for pair in pairs:
    cell, n = paired_cell(rows, pair)
    sign = "/" if pair.log else "−"
    lines.append(f"| {pair.column.header}: {pair.b} {sign} {pair.a} | {n} | {cell} |")
  return lines


def write_page(out: str | pathlib.Path, name: str, units: Sequence[ledger.Row],
               expected: Sequence[str], *, title: str, claim: str,
               columns: Sequence[Column], rows: Sequence[Row], figure: Figure | None = None,
               notes: str = "", paired: Sequence[Paired] = (),
               curves: Sequence[Curves] = ()) -> pathlib.Path:
  """Writes ``out/NAME.md`` (and ``out/NAME.svg``, ``out/NAME-{suffix}.svg`` per
  :class:`Curves`) from the ledger's ``units`` alone (the
  names of the ``expected`` units say which are missing), so that ``reproduce NAME
  --page-only`` rewrites it byte for byte; each file appears whole or not at all."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  lines = [f"# {title}", "", claim.strip(), "", provenance(name, units, expected), ""]
  if any(u.scale == "smoke" for u in units):
    lines += ["**Smoke scale**: tiny models at initialisation, to check the pipeline. These "
              "numbers carry no claim.", ""]
  lines += ["## Results", "", *tables(columns, rows), ""]
  if paired:
    lines += ["Paired by seed (each seed's settings share their seed, data order and, where "
              "the design says so, their source model): the mean difference across seeds "
              "with its 95 % Student-t interval; for quantities that differ by factors, the "
              "geometric mean ratio with its interval.", "", *paired_table(rows, paired), ""]
  if figure is not None:
    _atomic_write(out / f"{name}.svg", scatter_svg(figure, rows))
    lines += [f"![{figure.caption or title}]({name}.svg)", "", figure.caption, ""]
  for c in curves:
    _atomic_write(out / f"{name}-{c.suffix}.svg", curves_svg(c, rows))
    lines += [f"![{c.caption or c.header}]({name}-{c.suffix}.svg)", "", c.caption, ""]
  if notes:
    lines += [notes.strip(), ""]
  row_notes: dict[str, list[str]] = {}
  for u in units:
    if u.notes:
      row_notes.setdefault(u.notes, []).append(u.unit)
  for note, which in row_notes.items():
    on = "every unit" if len(which) == len(units) else ", ".join(which)
    lines += [f"Note on {on}: {note}.", ""]
  commands = dict.fromkeys(c for u in units for c in u.commands)
  lines += ["## Commands", "", "Each run and evaluation above, as the command that makes it "
            "(a unit, `python -m jaxspatial.reproduce " + name + "`, runs the same code in "
            "one process):", "", "```bash", *commands, "```", ""]
  path = out / f"{name}.md"
  _atomic_write(path, "\n".join(lines))
  return path


def _plural(n: int) -> str:
  return "s" if n > 1 else ""


def provenance(name: str, units: Sequence[ledger.Row], expected: Sequence[str]) -> str:
  """Where the page's numbers come from: units done of those expected (and which are
  missing), result version, dates, commits, machines, shared references, interval rule."""
  have = {u.unit if u.target == name else f"{u.target}:{u.unit}" for u in units}
  missing = [e for e in expected if e not in have]
  text = (f"Built by `python -m jaxspatial.reproduce {name} --page-only` from the rows in "
          f"`results/{name}/`: **{len(have & set(expected))} of {len(expected)} units**")
  text += f" (missing: {', '.join(missing)})." if missing else "."
  if units:
    dates = sorted(u.date for u in units)
    versions = sorted({u.version for u in units})
    machines: dict[str, int] = {}
    for u in units:
      m = u.machine
      key = (f"{m.get('device_kind', m.get('platform', '?'))}" +
             (f" × {m['device_count']}" if m.get("device_count", 1) > 1 else "") +
             f", {m.get('cpu', '?')} ({m.get('cores', '?')} cores), jax {m.get('jax', '?')}")
      machines[key] = machines.get(key, 0) + 1
    text += (f" Result version {', '.join(map(str, versions))}; units run {dates[0]}"
             f"{'' if dates[0] == dates[-1] else ' to ' + dates[-1]} at commit(s) "
             f"{', '.join(sorted({f'`{u.commit}`' for u in units}))} on "
             f"{'; '.join(f'{k} ({v} unit{_plural(v)})' for k, v in machines.items())}.")
    refs = sorted({(k, r["path"], r["sha256"]) for u in units for k, r in u.references.items()})
    if refs:
      text += " Shared references: " + "; ".join(
          f"{k} `{p}` (sha256 `{h[:12]}…`)" for k, p, h in refs) + "."
      if len({k for k, _, _ in refs}) < len(refs):
        text += " **Units measured with different references are mixed on this page.**"
  return text + (" Intervals: mean ± the 95 % Student-t half-width across training seeds "
                 "(n − 1 degrees of freedom).")


def _atomic_write(path: pathlib.Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def _extent(figure: Figure, rows: Sequence[Row]) -> tuple[list[float], list[float]]:
  """Every x and y the figure draws: the runs' points and each setting's interval ends."""
  ok_x = lambda v: np.isfinite(v) and (v > 0 or not figure.log_x)
  xs, ys = [], []
  for r in rows:
    pairs = [(x, y) for x, y in zip(r.values(figure.x.key), r.values(figure.y.key))
             if ok_x(x) and np.isfinite(y)]
    if not pairs:
      continue
    xs += [x for x, _ in pairs]
    ys += [y for _, y in pairs]
    for key, out in ((figure.x.key, xs), (figure.y.key, ys)):
      mean, half, n = interval(r.values(key))
      out += [v for v in (mean - half, mean + half) if n > 1 and np.isfinite(v)]
  xs = [x for x in xs if ok_x(x)]
  return xs or [1.0], ys or [0.0]


class _Frame:
  """The plot area of an SVG figure: data ranges padded by 6 %, pixel maps ``px`` / ``py``
  (``log_x``: x on a log10 scale; ``pad_x=False``: x spans exactly its data, as training
  steps do), and the frame, ticks (x as ``x_format``), axis labels and legend around what a
  figure draws inside (clipped to the plot area)."""

  def __init__(self, xs, ys, width: int, height: int, log_x: bool = False, pad_x: bool = True,
               x_format: str = ".3g"):
    self.tx = math.log10 if log_x else (lambda v: v)
    self.width, self.height, self.log_x, self.x_format = width, height, log_x, x_format
    pad = lambda lo, hi: (lo - 0.06 * (hi - lo or 1), hi + 0.06 * (hi - lo or 1))
    lo, hi = min(map(self.tx, xs)), max(map(self.tx, xs))
    self.x0, self.x1 = pad(lo, hi) if pad_x or lo == hi else (lo, hi)
    self.y0, self.y1 = pad(min(ys), max(ys))
    self.left, self.right, self.top, self.bottom = 70, width - 250, 20, height - 50

  def px(self, v: float) -> float:
    return self.left + (self.tx(v) - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

  def py(self, v: float) -> float:
    return self.bottom - (v - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

  def svg(self, x_label: str, y_label: str, inside: list[str], labels: Sequence[str]) -> str:
    left, right, top, bottom = self.left, self.right, self.top, self.bottom
    width, height, x0, x1, y0, y1 = self.width, self.height, self.x0, self.x1, self.y0, self.y1
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<clipPath id="plot"><rect x="{left}" y="{top}" width="{right - left}" '
           f'height="{bottom - top}"/></clipPath>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
           'fill="none" stroke="#444"/>']
    for i in range(5):
      fx, fy = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
      gx, gy = left + (right - left) * i / 4, bottom - (bottom - top) * i / 4
      svg += [f'<text x="{gx:.1f}" y="{bottom + 16}" text-anchor="middle">'
              f'{10 ** fx if self.log_x else fx:{self.x_format}}</text>',
              f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">{fy:.3g}</text>']
    svg += [f'<text x="{(left + right) / 2}" y="{height - 12}" text-anchor="middle">'
            f'{x_label}{" (log scale)" if self.log_x else ""}</text>',
            f'<text transform="translate(16 {(top + bottom) / 2}) rotate(-90)" '
            f'text-anchor="middle">{y_label}</text>', '<g clip-path="url(#plot)">',
            *inside, "</g>"]
    for k, label in enumerate(labels):
      svg.append(f'<text x="{right + 12}" y="{top + 16 + 18 * k}" '
                 f'fill="{PALETTE[k % len(PALETTE)]}">● {label}</text>')
    return "\n".join(svg + ["</svg>", ""])


def scatter_svg(figure: Figure, rows: Sequence[Row], width: int = 640, height: int = 380) -> str:
  """An SVG scatter: faint per-run points, per-setting means with 95 % interval bars."""
  xs, ys = _extent(figure, rows)
  frame = _Frame(xs, ys, width, height, figure.log_x)
  inside = [line for k, r in enumerate(rows)
            for line in _series(r, figure, PALETTE[k % len(PALETTE)], frame.px, frame.py)]
  return frame.svg(figure.x.header, figure.y.header, inside, [r.label for r in rows])


def _curve(run_results: dict[str, float], prefix: str) -> list[tuple[int, float]]:
  """The (step, value) points of ``{prefix}{step}`` keys, by step, finite values only."""
  points = [(int(k[len(prefix):]), v) for k, v in run_results.items()
            if k.startswith(prefix) and k[len(prefix):].isdigit()]
  return sorted((s, v) for s, v in points if v is not None and np.isfinite(v))


def curves_svg(curves: Curves, rows: Sequence[Row], width: int = 640, height: int = 300) -> str:
  """An SVG line plot of ``curves`` over training: faint per-run lines, each setting's mean
  across its runs at the steps all of them logged (bold), ``reference`` dashed."""
  per_row = [[_curve(res, curves.prefix) for _, res in r.runs] for r in rows]
  points = [p for runs in per_row for run in runs for p in run]
  ys = [v for _, v in points] + ([curves.reference] if curves.reference is not None else [])
  frame = _Frame([s for s, _ in points] or [0, 1], ys or [0.0], width, height, pad_x=False,
                 x_format=".0f")
  line = lambda pts, colour, extra: (
      f'<polyline points="{" ".join(f"{frame.px(s):.1f},{frame.py(v):.1f}" for s, v in pts)}" '
      f'fill="none" stroke="{colour}" {extra}/>')
  inside = []
  if curves.reference is not None:
    y = frame.py(curves.reference)
    inside.append(f'<line x1="{frame.left}" y1="{y:.1f}" x2="{frame.right}" y2="{y:.1f}" '
                  'stroke="#888" stroke-dasharray="4 3"/>')
  for k, runs in enumerate(per_row):
    colour = PALETTE[k % len(PALETTE)]
    inside += [line(run, colour, 'stroke-opacity="0.35"') for run in runs if len(run) > 1]
    common = sorted(set.intersection(*(set(dict(run)) for run in runs))) if runs else []
    mean = [(s, float(np.mean([dict(run)[s] for run in runs]))) for s in common]
    if len(mean) > 1:
      inside.append(line(mean, colour, 'stroke-width="2.5"'))
  return frame.svg("training step", curves.header, inside, [r.label for r in rows])


def _series(row: Row, figure: Figure, colour: str, px, py) -> list[str]:
  """One setting: its runs as faint dots, its mean as a dot with 95 % interval bars."""
  ok_x = lambda v: np.isfinite(v) and (v > 0 or not figure.log_x)
  out = [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}" '
         'fill-opacity="0.35"/>'
         for x, y in zip(row.values(figure.x.key), row.values(figure.y.key))
         if ok_x(x) and np.isfinite(y)]
  (mx, hx, _), (my, hy, _) = (interval(row.values(figure.x.key)),
                              interval(row.values(figure.y.key)))
  if not (ok_x(mx) and np.isfinite(my)):
    return out
  if np.isfinite(hx) and ok_x(mx - hx):
    out.append(f'<line x1="{px(mx - hx):.1f}" y1="{py(my):.1f}" x2="{px(mx + hx):.1f}" '
               f'y2="{py(my):.1f}" stroke="{colour}"/>')
  if np.isfinite(hy):
    out.append(f'<line x1="{px(mx):.1f}" y1="{py(my - hy):.1f}" x2="{px(mx):.1f}" '
               f'y2="{py(my + hy):.1f}" stroke="{colour}"/>')
  out.append(f'<circle cx="{px(mx):.1f}" cy="{py(my):.1f}" r="5" fill="{colour}"/>')
  return out
