"""The studio page in headless Chromium (Playwright, the system browser): mouse events on the
canvas drive each kind's edit, and the page's state (``window.studio``) and the images it
shows are checked. One live server and one browser serve every test; each test opens its
own tab (its own session) and leaves a screenshot in test-artifacts/studio/."""

import base64
import contextlib
import io

import numpy as np
import pytest
from PIL import Image

import jaxspatial as js
from jaxspatial import imageio

pytestmark = pytest.mark.slow      # a real browser against a live server
RES = 16


@contextlib.contextmanager
def new_tab(browser, base, token):
  """A tab of its own (its own session) on the studio at ``base``; no JavaScript error."""
  context = browser.new_context(viewport={"width": 1100, "height": 760})
  tab = context.new_page()
  errors = []
  tab.on("pageerror", lambda e: errors.append(str(e)))
  tab.base, tab.token = base, token
  try:
    yield tab
  finally:
    context.close()
  assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def page(browser, live_server, studio):
  with new_tab(browser, live_server, studio.token) as tab:
    yield tab


@pytest.fixture
def indoor_page(browser, indoor_server, indoor_studio):
  with new_tab(browser, indoor_server, indoor_studio.token) as tab:
    yield tab


def open_model(page, name):
  """The studio as a user opens it: the printed URL with its token (plus a model to show)."""
  page.goto(f"{page.base}/?model={name}&token={page.token}")
  page.wait_for_function("() => document.getElementById('status').textContent === 'ready'",
                         timeout=120_000)
  return page.evaluate("window.studio.state")


def decode(url) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), np.float32)


def to_screen(page, row, col, canvas="#canvas"):
  """Page coordinates of the centre of image pixel (row, col) on the canvas."""
  box = page.locator(canvas).bounding_box()
  s = box["width"] / RES
  return box["x"] + (col + 0.5) * s, box["y"] + (row + 0.5) * s


def wait_history(page, n, timeout=120_000):
  page.wait_for_function(f"() => window.studio.state.history.length >= {n}", timeout=timeout)
  return page.evaluate("window.studio.state")


def test_the_tokened_url_opens_the_page_and_nothing_else_does(page, screenshots):
  """The address the studio prints opens the page with no failed request (the favicon
  included); the same address without its token, in a fresh tab, does not; and the page
  cannot turn a string into markup (Trusted Types, enforced by the studio's CSP)."""
  failed = []
  page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
  open_model(page, "sg2")
  assert failed == []
  outcome = page.evaluate("""() => { try { document.getElementById('error').innerHTML = '<b>x</b>';
      return 'markup'; } catch (e) { return e.name; } }""")
  assert outcome == "TypeError"
  page.context.clear_cookies()
  r = page.goto(page.base + "/")
  assert r.status == 403 and "studio token" in page.content()
  page.screenshot(path=screenshots / "no_token.png")


def test_drag_a_heatmap_centre_moves_it_and_changes_the_image(page, screenshots):
  before = open_model(page, "sgan")
  c0 = before["overlay"]["centres"][0]
  dr, dc = (3 if c0["row"] < 8 else -3), (4 if c0["col"] < 8 else -4)   # toward the middle
  page.mouse.move(*to_screen(page, c0["row"], c0["col"]))
  page.mouse.down()
  for k in range(1, 6):
    page.mouse.move(*to_screen(page, c0["row"] + dr * k / 5, c0["col"] + dc * k / 5))
  page.mouse.up()
  after = wait_history(page, 2)
  c1 = after["overlay"]["centres"][0]
  assert (c1["row"] - c0["row"], c1["col"] - c0["col"]) == pytest.approx((dr, dc), abs=0.1)
  assert np.abs(decode(after["image"]) - decode(before["image"])).max() > 0
  assert after["history"][-1] == "move centre 0"
  page.screenshot(path=screenshots / "heatmap_drag.png")


def test_an_indoor_models_objects_are_removed_scaled_and_restyled_from_the_page(
    indoor_page, screenshots):
  """On an indoor (3-object) model each object is selectable, with the mouse on the canvas or
  in the list beside it, then removed (button), scaled (+ key on the canvas) and restyled
  (button, from the keyboard); undo walks the edits back; the single-object model in the same
  tab offers no restyle."""
  page = indoor_page
  before = open_model(page, "indoor")
  centres = before["overlay"]["centres"]
  assert len(centres) == 3 and {c["level"] for c in centres} == {0}
  assert page.is_visible("#restyle") and page.is_disabled("#restyle")    # nothing selected
  assert page.locator("#centre option").all_inner_texts() == [
      "none", *(f"object {c['index']}" for c in centres)]

  def gap(c):                                     # to the nearest other object, in pixels
    return min(np.hypot(c["row"] - o["row"], c["col"] - o["col"]) for o in centres if o is not c)
  a = max(centres, key=gap)["index"]              # a click on it cannot pick another
  b, c = (i for i in range(3) if i != a)
  page.mouse.click(*to_screen(page, centres[a]["row"], centres[a]["col"]))
  assert page.evaluate("window.studio.selected") == a and page.input_value("#centre") == str(a)
  page.click("#centre-remove")
  removed = wait_history(page, 2)
  assert [x["present"] for x in removed["overlay"]["centres"]] == [i != a for i in range(3)]
  assert page.locator("#centre option").nth(1 + a).inner_text() == f"object {a}, removed"
  assert page.is_disabled("#centre-remove")       # a removed object has nothing to edit
  assert np.abs(decode(removed["image"]) - decode(before["image"])).max() > 0

  page.select_option("#centre", str(b))
  page.focus("#canvas")
  page.keyboard.press("+")
  scaled = wait_history(page, 3)
  step = page.evaluate("SCALE_STEP")
  sigmas = [x["sigma"] for x in scaled["overlay"]["centres"]]
  want = [x["sigma"] * (step if x["index"] == b else 1) for x in removed["overlay"]["centres"]]
  assert step > 1 and sigmas == pytest.approx(want, rel=1e-5)
  assert scaled["history"][-1] == f"scale centre {b} x{step:.2f}"
  assert np.abs(decode(scaled["image"]) - decode(removed["image"])).max() > 0

  page.select_option("#centre", str(c))
  page.focus("#restyle")
  page.keyboard.press("Enter")
  restyled = wait_history(page, 4)
  assert restyled["history"][-1] == f"restyle object {c}"
  assert restyled["overlay"] == scaled["overlay"]                   # the layout is kept
  assert np.abs(decode(restyled["image"]) - decode(scaled["image"])).max() > 0
  page.screenshot(path=screenshots / "indoor_restyle.png")

  for index, want in ((2, scaled), (0, before)):
    while page.evaluate("window.studio.state.index") > index:
      current = page.evaluate("window.studio.state.index")
      page.click("#undo")
      page.wait_for_function(f"() => window.studio.state.index < {current}")
    assert page.evaluate("window.studio.state.image") == want["image"]
  assert page.locator("#centre option").all_inner_texts() == [
      "none", *(f"object {x['index']}" for x in centres)]

  page.select_option("#model", "sgan")
  page.wait_for_function("() => window.studio.model.name === 'sgan' && "
                         "window.studio.state.overlay.centres.length === 7", timeout=120_000)
  assert not page.is_visible("#restyle") and not page.evaluate("hasEdit('restyle')")
  assert page.locator("#centre option").nth(1).inner_text() == "centre 0 (level 0)"


def test_click_ssn_blocks_and_resample_changes_only_those_blocks(page, screenshots, studio):
  before = open_model(page, "ssn")
  picked = [(0, 0), (0, 1)]
  for r, c in picked:                             # a 4x4 grid: block (r, c) is pixels 4r..4r+3
    page.mouse.click(*to_screen(page, 4 * r + 1.5, 4 * c + 1.5))
  assert sorted(page.evaluate("selectedBlocks()")) == [list(b) for b in picked]
  page.click("#resample")
  page.wait_for_selector("#candidates img[data-index='5']", timeout=120_000)
  page.screenshot(path=screenshots / "ssn_candidates.png")
  page.click("#candidates img[data-index='0']")
  after = wait_history(page, 2)
  seed = int(after["history"][-1].rsplit("seed ", 1)[1].rstrip(")"))
  engine = studio.engines["ssn"]                  # the page's image is the library's resample
  z = js.ssn.resample_blocks(engine.model.sample_z(0, 1), picked, seed)
  want = imageio.to_uint8(engine.model.generate(z)[0]).astype(np.float32)
  assert np.abs(decode(after["image"]) - want).max() <= 1
  change = np.abs(decode(after["image"]) - decode(before["image"])).max(-1)   # (16, 16), 0..255
  inside, far = change[:4, :8], change[8:, :]     # far: two block rows away
  # SSN's sigma_E is an image-wide mean, so far pixels move a little even here; the change
  # is concentrated in the clicked blocks.
  assert inside.mean() > 4 * far.mean(), (inside.mean(), far.mean())


def test_draggan_points_stream_steps_and_stop_by_themselves(page, screenshots):
  open_model(page, "sg2")
  page.fill("#max-steps", "12")
  page.mouse.click(*to_screen(page, 8, 4))        # handle
  page.mouse.click(*to_screen(page, 8, 11))       # target
  page.evaluate("""() => { window.steps = [];
    new MutationObserver(() => window.steps.push(+document.getElementById('step').textContent))
      .observe(document.getElementById('step'), {childList: true}); }""")
  page.click("#drag-start")
  page.wait_for_function("() => window.studio.lastEvent?.type === 'done'", timeout=120_000)
  steps = page.evaluate("window.steps")
  assert len(steps) >= 3 and steps == sorted(steps) and steps[-1] > steps[1]
  final = page.evaluate("window.studio.lastEvent")
  assert final["step"] <= 12 and (final["converged"] or final["step"] == 12)
  assert page.evaluate("window.studio.state.history.at(-1)").startswith("drag")
  page.screenshot(path=screenshots / "drag.png")


def drag_on_page(page, handle, target):
  """Clears the points, clicks ``handle`` then ``target``, presses Start and waits until the
  drag's stream has ended -> its last event."""
  page.click("#points-clear")
  page.mouse.click(*to_screen(page, *handle))
  page.mouse.click(*to_screen(page, *target))
  page.evaluate("window.studio.lastEvent = null")
  page.click("#drag-start")
  page.wait_for_function("() => window.studio.lastEvent?.type === 'done' && !window.studio.busy",
                         timeout=120_000)
  return page.evaluate("window.studio.lastEvent")


def test_a_finished_drag_shows_the_drag_commands_report(page, screenshots):
  """When a drag ends, the report the server computed (the lines ``python -m jaxspatial.drag``
  prints) appears beside the drag controls, numbers included, its warnings marked apart; the
  next drag replaces it."""
  open_model(page, "sg2")
  page.fill("#max-steps", "8")
  done = drag_on_page(page, (8, 4), (8, 11))
  r = done["report"][0]
  shown = page.locator("#drag-report div").all_inner_texts()
  assert shown == [line for h in done["report"] for line in (h["text"], *h["warnings"])]
  assert shown[0].startswith(f"handle 1 (8,4) -> (8,11): asked 7.0 px, tracked "
                             f"{r['tracked']:.1f} px; ")
  assert f"changed {100 * r['change']:.1f} %" in shown[0]
  assert (f"moved {r['content']:.1f} px (patch match error {r['match_error']:.3f})" in shown[0]
          or r["uniform"])
  page.screenshot(path=screenshots / "drag_report.png")
  arrived = drag_on_page(page, (8, 4), (8, 5))     # within the stop distance: nothing moves
  assert arrived["step"] == 0 and arrived["report"][0]["unchanged"]
  lines = page.locator("#drag-report div")
  assert lines.all_inner_texts()[0].startswith("handle 1 (8,4) -> (8,5): asked 1.0 px")
  warning = page.locator("#drag-report .warning", has_text="barely changed (0.0 %")
  assert warning.count() == 1
  colour = "(e) => getComputedStyle(e).color"
  assert warning.evaluate(colour) != lines.first.evaluate(colour)
  assert warning.evaluate("(e) => getComputedStyle(e).borderLeftStyle") == "solid"


def test_brush_parts_on_two_sources_shows_the_composite(page, screenshots):
  before = open_model(page, "reg")

  def stroke(row):
    page.mouse.move(*to_screen(page, row, 0))
    page.mouse.down()
    for col in range(RES):
      page.mouse.move(*to_screen(page, row, col))
    page.mouse.up()
  stroke(3)
  first = wait_history(page, 2)
  page.click("#sources canvas[title='source 1']")
  page.wait_for_selector("#sources canvas.active[title='source 1']")
  stroke(12)
  after = wait_history(page, 3)
  masks = [decode(m)[..., 0] > 127 for m in after["masks"]]
  rows = [m.any(1).nonzero()[0].tolist() for m in masks]
  assert masks[0][3].all() and not masks[0][12].any(), rows
  assert masks[1][12].all() and not masks[1][3].any()
  assert after["history"][-2:] == ["composite", "composite"]
  assert first["image"] != before["image"] and after["image"] != first["image"]
  result = page.evaluate("document.getElementById('result').toDataURL()")
  # The result panel shows the composite the server returned, 16x nearest-neighbour (256 px).
  scale = 256 // RES
  want = decode(after["image"])[..., :3].repeat(scale, axis=0).repeat(scale, axis=1)
  np.testing.assert_allclose(decode(result)[..., :3], want, atol=1)
  page.screenshot(path=screenshots / "composite.png")


def test_a_corrupt_upload_shows_the_error_and_keeps_the_image(page, screenshots):
  before = open_model(page, "reg")
  page.set_input_files("#upload", files=[{"name": "photo.png", "mimeType": "image/png",
                                          "buffer": b"\x89PNG\r\n\x1a\n this is not a png"}])
  page.wait_for_function("() => document.getElementById('error').textContent.length > 0")
  assert "not a readable image" in page.inner_text("#error")
  state = page.evaluate("window.studio.state")
  assert state["image"] == before["image"] and state["sources"] == before["sources"]
  page.screenshot(path=screenshots / "upload_error.png")


def test_an_uploaded_photo_is_projected_then_dragged(page, screenshots, studio):
  before = open_model(page, "sg2")
  photo = imageio.to_uint8(studio.engines["sg2"].new(5).image)   # another seed's image
  buf = io.BytesIO()
  Image.fromarray(photo).save(buf, format="PNG")
  page.mouse.click(*to_screen(page, 3, 3))               # points on the image before
  page.mouse.click(*to_screen(page, 3, 9))
  assert page.evaluate("window.studio.targets.length") == 1
  page.fill("#project-steps", "30")
  page.evaluate("""() => { window.progress = [];
    const bar = document.getElementById('project-progress');
    new MutationObserver(() => window.progress.push(bar.value))
      .observe(bar, {attributes: true}); }""")
  page.set_input_files("#photo", files=[{"name": "photo.png", "mimeType": "image/png",
                                         "buffer": buf.getvalue()}])
  projected = wait_history(page, 2)
  progress = page.evaluate("window.progress")
  assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] == 30
  assert projected["history"][-1].startswith("projected photo (30 steps")
  err = decode(projected["image"]) - photo
  assert np.sqrt(np.mean(err ** 2)) < 0.5 * np.sqrt(np.mean(
      (decode(before["image"]) - photo) ** 2))          # the page shows the photo, not seed 0
  assert page.evaluate("[window.studio.handles, window.studio.targets]") == [[], []]
  assert page.inner_text("#latency").startswith("projected photo (30 steps")
  assert page.is_visible("#photo-view")                  # the photo beside its projection
  shown = page.evaluate("""() => { const img = document.getElementById('photo-view');
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    return Array.from(g.getImageData(0, 0, c.width, c.height).data); }""")
  shown = np.array(shown, np.float32).reshape(RES, RES, 4)[..., :3]
  assert np.abs(shown - photo).max() <= 1
  page.screenshot(path=screenshots / "projected.png")
  page.fill("#max-steps", "3")
  page.mouse.click(*to_screen(page, 8, 4))               # a DragGAN handle and target on it
  page.mouse.click(*to_screen(page, 8, 10))
  page.click("#drag-start")
  dragged = wait_history(page, 3)
  assert dragged["history"][-1].startswith("drag")
  latency, done = page.inner_text("#latency"), page.evaluate("window.studio.lastEvent")
  assert latency == f"{dragged['history'][-1]}: {dragged['ms']:.1f} ms"
  assert dragged["ms"] >= done["step"] * done["ms_per_step"] > 0   # the whole drag's time
  assert dragged["history"][-2] == projected["history"][-1]      # it dragged the photo
  page.click("#new")                                             # and a new image follows
  assert wait_history(page, 4)["noise"] == "const"


def test_the_studio_benchmark_times_every_edit(studio, live_server, browser):
  import httpx

  from jaxspatial.benchmarks import studio as bench
  with httpx.Client(base_url=live_server, timeout=120,
                    headers={"X-Studio-Token": studio.token}) as client:
    rows = bench._edits(client, list(studio.engines.values()), repeats=2)
    rows += bench._page_load(live_server, studio.token, client, repeats=2, browser=browser)
  names = {r["bench"] for r in rows}
  assert {"studio heatmap move", "studio SSN resample (6 candidates)", "studio composite (2 parts)",
          "studio drag step (streamed)", "studio projection step (streamed)",
          "studio page load (Chromium, to ready)"} <= names
  assert all(r["median_ms"] > 0 for r in rows)
