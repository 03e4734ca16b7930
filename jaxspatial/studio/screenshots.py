r"""Screenshots of the studio for the docs: serve it, drive headless Chromium through one edit
per model, save ``studio_<kind>.png``.

    python -m jaxspatial.studio.screenshots --checkpoint runs/demo --checkpoint runs/sgan \
        --checkpoint runs/ssn --checkpoint runs/reg --out docs/images

Each screenshot shows the page after a real edit: a DragGAN drag (StyleGAN2), a heatmap centre
dragged with the mouse (SpatialGAN; a multi-object model's object 0 moved, then its last object
restyled from the centre list, saved as ``studio_spatialgan_indoor.png``), two clicked blocks
resampled into the candidate strip (SSN), two brushed parts composited (regressor). Needs the
system Chromium and Playwright.
"""

from __future__ import annotations

import pathlib
import shutil

from jaxspatial import cli, errors


def _canvas_point(page, row: float, col: float, resolution: int) -> tuple[float, float]:
  box = page.locator("#canvas").bounding_box()
  s = box["width"] / resolution
  return box["x"] + (col + 0.5) * s, box["y"] + (row + 0.5) * s


def _ready(page, base: str, token: str, name: str, seed: int) -> dict:
  page.goto(f"{base}/?model={name}&token={token}")
  page.wait_for_function("() => document.getElementById('status').textContent === 'ready'",
                         timeout=300_000)
  if page.is_visible("#seed"):                   # generators (the regressor starts at seed 0)
    page.fill("#seed", str(seed))
    page.click("#new")
    page.wait_for_function(f"() => window.studio.state.seed === {seed}", timeout=300_000)
  return page.evaluate("window.studio.state")


def _edit(page, edits: list[str], res: int, drag: tuple[tuple[float, float], ...]) -> None:
  """One representative edit of a model offering ``edits`` (its engine's, as the page gets
  them: heatmaps, else block resampling, else the collage, else a drag) with mouse events,
  waiting for its result."""
  at = lambda r, c: _canvas_point(page, r, c, res)  # noqa: E731
  n = page.evaluate("window.studio.state.history.length")
  style = next((e for e in ("heatmaps", "resample", "composite", "drag") if e in edits), None)
  if style == "drag":
    page.mouse.click(*at(*drag[0]))
    page.mouse.click(*at(*drag[1]))
    page.fill("#max-steps", "60")
    page.click("#drag-start")
    page.wait_for_function("() => window.studio.lastEvent?.type === 'done'", timeout=600_000)
  elif style == "heatmaps":
    c = page.evaluate("window.studio.state.overlay.centres[0]")
    page.mouse.move(*at(c["row"], c["col"]))
    page.mouse.down()
    dc = res * 0.3 if c["col"] < res / 2 else -res * 0.3
    for k in range(1, 9):
      page.mouse.move(*at(c["row"], c["col"] + dc * k / 8))
    page.mouse.up()
    page.wait_for_function(f"() => window.studio.state.history.length > {n}", timeout=300_000)
    if "restyle" in edits:                       # one style code per object: restyle the last
      last = page.evaluate("window.studio.state.overlay.centres.length") - 1
      page.select_option("#centre", str(last))
      page.click("#restyle")
      page.wait_for_function(f"() => window.studio.state.history.length > {n + 1}",
                             timeout=300_000)
  elif style == "resample":
    grid = page.evaluate("window.studio.model.grid")
    for r, c in ((0, 1), (0, 2)):
      page.mouse.click(*at((r + 0.5) * res / grid[0], (c + 0.5) * res / grid[1]))
    page.click("#resample")
    page.wait_for_selector("#candidates img[data-index='5']", timeout=300_000)
  elif style == "composite":
    for source, row in ((0, res * 0.7), (1, res * 0.35)):
      page.click(f"#sources canvas[title='source {source}']")
      page.wait_for_selector(f"#sources canvas.active[title='source {source}']")
      page.fill("#brush", "10")
      for r in (row - res * 0.12, row, row + res * 0.12):
        page.mouse.move(*at(r, 0))
        page.mouse.down()
        page.mouse.move(*at(r, res - 1), steps=12)
        page.mouse.up()
        n += 1
        page.wait_for_function(f"() => window.studio.state.history.length >= {min(n, 50)}",
                               timeout=300_000)


def main(argv=None) -> None:
  p = cli.ArgumentParser.for_command("studio.screenshots", __doc__)
  p.add_argument("--checkpoint", action="append", required=True, metavar="DIR",
                 help="model directories (one screenshot each)")
  p.add_argument("--seed", type=int, default=3, help="seed of the image edited (default 3)")
  p.add_argument("--drag", default="25,21:25,12", metavar="ROW,COL:ROW,COL",
                 help="StyleGAN2: DragGAN handle and target pixels (default 25,21:25,12)")
  p.add_argument("--out", required=True, help="folder for the studio_<kind>.png files")
  args = p.parse_args(argv)
  try:
    drag = tuple(tuple(float(v) for v in point.split(",")) for point in args.drag.split(":"))
    assert len(drag) == 2 and all(len(point) == 2 for point in drag)
  except (ValueError, AssertionError):
    raise errors.UserError(f"--drag must be ROW,COL:ROW,COL, got {args.drag!r}") from None
  chromium = shutil.which("chromium") or shutil.which("chromium-browser")
  if chromium is None:
    raise errors.UserError("no system Chromium on PATH (apt-get install chromium)")
  try:
    from playwright.sync_api import sync_playwright
  except ImportError:
    raise errors.UserError("pip install playwright (the test extra has it)") from None
  from jaxspatial.benchmarks.studio import serve
  from jaxspatial.studio import __main__ as studio_cmd
  from jaxspatial.studio import server
  studio = studio_cmd.build(studio_cmd.parse_args(sum((["--checkpoint", c] for c in
                                                        args.checkpoint), [])))
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  base, stop = serve(server.create_app(studio))
  try:
    with sync_playwright() as pw:
      browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                   args=["--no-sandbox"])
      for path in args.checkpoint:
        page = browser.new_page(viewport={"width": 1290, "height": 600})
        name = pathlib.Path(path).name
        state = _ready(page, base, studio.token, name, args.seed)
        edits = page.evaluate("window.studio.model.edits")
        _edit(page, edits, page.evaluate("window.studio.model.resolution"), drag)
        shot = out / f"studio_{state['kind']}{'_indoor' if 'restyle' in edits else ''}.png"
        page.screenshot(path=shot)
        print(f"wrote {shot} ({name})")
        page.close()
      browser.close()
  finally:
    stop()


if __name__ == "__main__":
  cli.run(main)
