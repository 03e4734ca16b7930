"""The studio's HTTP API on tiny models of every kind (Starlette's TestClient): each edit
against the library call it wraps, undo/redo, sessions, streaming, and every refusal a
one-line 4xx that leaves the session's state as it was."""

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from studio_http import assert_refused, events, image_of, png_url, post, raw, session, upload

import jaxspatial as js
from jaxspatial import imageio

RES = 16


def test_page_and_models(client):
  page = client.get("/")
  assert page.status_code == 200 and "<canvas" in page.text
  assert client.get("/static/studio.js").status_code == 200
  info = client.get("/api/models").json()
  kinds = {m["name"]: m["kind"] for m in info["models"]}
  assert kinds == {"sg2": "stylegan2", "sgan": "spatialgan", "ssn": "ssn", "reg": "regressor"}
  edits = {m["name"]: m["edits"] for m in info["models"]}
  assert "drag" in edits["sg2"] and "heatmaps" in edits["sgan"] and "resample" in edits["ssn"]
  assert info["ready"] and info["save"]


def test_generate_matches_the_library_and_history_undoes(client, studio):
  s = session(client, "sg2", seed=3)
  m = studio.engines["sg2"].model
  want = imageio.to_uint8(m.generate(m.sample_z(3, 1), truncation=1.0)[0])
  np.testing.assert_allclose(image_of(s["image"]), want, atol=1)
  t = post(client, s, "settings", truncation=0.5, noise="none").json()
  want = imageio.to_uint8(m.generate(m.sample_z(3, 1), truncation=0.5, noise="none")[0])
  np.testing.assert_allclose(image_of(t["image"]), want, atol=1)
  assert t["history"] == ["seed 3", "truncation 0.5, noise none"] and t["ms"] > 0
  assert post(client, s, "undo").json()["image"] == s["image"]
  assert post(client, s, "redo").json()["image"] == t["image"]
  assert post(client, s, "reset").json()["image"] == s["image"]


def test_history_and_sessions_are_bounded(client, studio):
  s = session(client, "sg2")
  for seed in range(1, 9):
    last = post(client, s, "generate", seed=seed).json()
  assert len(last["history"]) == studio.store.max_history and last["seed"] == 8
  for _ in range(studio.store.max_sessions):
    session(client, "sg2")
  assert len(studio.store) == studio.store.max_sessions
  assert_refused(client.get(f"/api/s/{s['sid']}/state"), 404, "unknown or expired session")


def test_heatmap_move_scale_remove(client, studio):
  s = session(client, "sgan", seed=5)
  c0 = s["overlay"]["centres"][0]
  dr, dc = (3 if c0["row"] < 8 else -3), (2 if c0["col"] < 8 else -2)     # toward the middle
  r = post(client, s, "heatmap", op="move", index=0, row=c0["row"] + dr, col=c0["col"] + dc)
  assert r.status_code == 200, r.text
  moved = r.json()
  m0 = moved["overlay"]["centres"][0]
  assert (m0["row"], m0["col"]) == pytest.approx((c0["row"] + dr, c0["col"] + dc), abs=1e-4)
  for child in (1, 2):                                    # its finer centres follow
    before, after = s["overlay"]["centres"][child], moved["overlay"]["centres"][child]
    assert after["row"] - before["row"] == pytest.approx(dr, abs=1e-4)
  m = studio.engines["sgan"].model
  h = m.sample_heatmaps(5, 1)
  unit = 2 / (RES - 1)
  want = m.generate(m.sample_z(5, 1), heatmaps=h.move(0, dr * unit, dc * unit))[0]
  np.testing.assert_allclose(image_of(moved["image"]), imageio.to_uint8(want), atol=1)
  scaled = post(client, s, "heatmap", op="scale", index=3, factor=1.5).json()
  assert scaled["overlay"]["centres"][3]["sigma"] == pytest.approx(1.5 * c0_sigma(s, 3))
  removed = post(client, s, "heatmap", op="remove", index=3).json()
  assert not removed["overlay"]["centres"][3]["present"]
  kept = post(client, s, "new_latent", seed=9).json()
  assert kept["overlay"]["centres"] == removed["overlay"]["centres"]
  assert kept["image"] != removed["image"]


def c0_sigma(s, i):
  return s["overlay"]["centres"][i]["sigma"]


def test_restyle_on_an_indoor_model_redraws_one_object_and_keeps_the_layout(indoor_client,
                                                                           indoor_studio):
  edits = {m["name"]: m["edits"] for m in indoor_client.get("/api/models").json()["models"]}
  assert "restyle" in edits["indoor"] and "restyle" not in edits["sgan"]
  s = session(indoor_client, "indoor", seed=2)
  r = post(indoor_client, s, "restyle", index=1, seed=7).json()
  assert r["overlay"] == s["overlay"] and r["history"][-1] == "restyle object 1"
  m = indoor_studio.engines["indoor"].model
  want = m.generate(m.restyle(m.sample_z(2, 1), 1, 7), heatmaps=m.sample_heatmaps(2, 1))[0]
  np.testing.assert_allclose(image_of(r["image"]), imageio.to_uint8(want), atol=1)
  assert np.abs(image_of(r["image"]) - image_of(s["image"])).max() > 0


def test_ssn_resample_changes_only_the_latent_blocks(client, studio):
  s = session(client, "ssn", seed=2)
  r = post(client, s, "resample", blocks=[[1, 2]], seed=40).json()
  assert len(r["candidates"]) == 6 and r["image"] == s["image"]
  picked = post(client, s, "pick", index=2).json()
  m = studio.engines["ssn"].model
  z = js.ssn.resample_blocks(m.sample_z(2, 1), [(1, 2)], 42)
  np.testing.assert_allclose(image_of(picked["image"]), imageio.to_uint8(m.generate(z)[0]),
                             atol=1)
  assert picked["candidates"] == [] and picked["history"][-1].endswith("(seed 42)")
  assert_refused(post(client, s, "pick", index=0), 400, "resample first")


def test_drag_streams_steps_and_stops_on_arrival(client):
  s = session(client, "sg2", seed=1)
  r = client.post(f"/api/s/{s['sid']}/drag",
                  json={"handles": [[8, 4]], "targets": [[8, 7]], "max_steps": 5})
  assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
  ev = events(r)
  assert [e["type"] for e in ev[:-1]] == ["step"] * (len(ev) - 1) and ev[-1]["type"] == "done"
  assert [e["step"] for e in ev[:-1]] == list(range(1, len(ev)))
  assert ev[-1]["step"] <= 5 and ev[-1]["state"]["history"][-1].startswith("drag")
  arrived = client.post(f"/api/s/{s['sid']}/drag", json={"handles": [[8, 4]], "targets": [[8, 5]]})
  done = events(arrived)
  assert len(done) == 1 and done[0]["converged"] and done[0]["step"] == 0
  assert done[0]["state"]["history"][-1] == "drag (0 steps)"     # the page draws this state


def test_a_drag_streams_the_drag_commands_report_with_its_last_event(client):
  """The final event carries what ``python -m jaxspatial.drag`` reports, measured on the
  images the page showed before and after; a drag that arrived at once changed nothing and
  says so in a warning."""
  from jaxspatial.edit import drag as drag_lib
  s = session(client, "sg2", seed=2)
  ev = events(post(client, s, "drag", handles=[[8, 4]], targets=[[8, 11]], max_steps=6))
  assert all("report" not in e for e in ev[:-1]) and len(ev[-1]["report"]) == 1
  done, got = ev[-1], ev[-1]["report"][0]
  before, after = image_of(s["image"]), image_of(done["state"]["image"])
  want = drag_lib.report(imageio.from_uint8(before), imageio.from_uint8(after), [[8, 4]],
                         [[8, 11]], np.asarray(done["handles"]))[0]
  assert {k: got[k] for k in ("asked", "tracked", "content", "match_error", "change",
                              "contrast", "radius", "uniform", "unchanged")} == \
      pytest.approx(dataclasses.asdict(want))
  assert got["asked"] == 7 and got["change"] > 0
  assert got["text"] == drag_lib.describe_report(1, (8.0, 4.0), (8.0, 11.0), want)
  assert got["warnings"] == drag_lib.report_warnings(1, (8.0, 4.0), want, done["converged"])
  arrived = events(post(client, s, "drag", handles=[[8, 4]], targets=[[8, 5]]))
  report = arrived[0]["report"][0]
  assert report["change"] == 0 and report["unchanged"] and report["tracked"] == 0
  assert any("barely changed (0.0 %" in w for w in report["warnings"])


def test_a_stopped_drag_reports_too(studio):
  """Stop ends a drag early; its last event still says what the drag did."""
  from jaxspatial.studio import ops
  engine = studio.engines["sg2"]
  s = studio.store.create(engine, engine.new(3))
  stream = ops.stream_drag(s, {"handles": [[8, 4]], "targets": [[8, 12]], "max_steps": 50})
  assert next(stream)["type"] == "step"
  s.stop.set()
  done = next(stream)
  assert done["type"] == "done" and done["stopped"] and not done["converged"]
  assert done["step"] < 50 and done["report"][0]["asked"] == 8
  assert done["report"][0]["text"].startswith("handle 1 (8,4) -> (8,12): asked 8.0 px")


def test_drag_in_w_space_and_spatialgan(client):
  s = session(client, "sg2", seed=1)
  ev = events(client.post(f"/api/s/{s['sid']}/drag", json={
      "handles": [[8, 4]], "targets": [[8, 9]], "max_steps": 2, "w_space": True}))
  assert ev[-1]["type"] == "done"
  w = np.load(io.BytesIO(client.get(f"/api/s/{s['sid']}/export.npz").content))["ws"]
  np.testing.assert_array_equal(w, np.repeat(w[:, :1], w.shape[1], axis=1))
  g = session(client, "sgan", seed=1)
  c0 = g["overlay"]["centres"][0]
  ev = events(client.post(f"/api/s/{g['sid']}/drag", json={
      "handles": [[c0["row"], c0["col"]]], "targets": [[c0["row"], min(15, c0["col"] + 4)]],
      "max_steps": 2}))
  moved = ev[-1]["state"]["overlay"]["centres"][0]
  assert moved["col"] > c0["col"]                    # the coarse move shifted the centre


def test_regressor_composite_upload_finetune_export(client, studio):
  s = session(client, "reg", seed=0)
  assert len(s["sources"]) == 2
  top = np.zeros((RES, RES), np.uint8)
  top[:RES // 2] = 255
  r = post(client, s, "composite", masks=[png_url(top), png_url(255 - top)]).json()
  m = studio.engines["reg"].model
  src = [m.generate(m.sample_z(k, 1)) for k in (0, 1)]
  mt = (top[None, ..., None] > 0).astype(np.float32)
  want = m.composite([(src[0], mt), (src[1], 1 - mt)])[0]
  np.testing.assert_allclose(image_of(r["image"]), imageio.to_uint8(want), atol=1)
  buf = io.BytesIO()
  Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(buf, format="JPEG")
  up = upload(client, s, buf.getvalue(), "image/jpeg").json()
  assert len(up["sources"]) == 3
  ev = events(client.post(f"/api/s/{s['sid']}/finetune", json={"steps": 3}))
  assert [e["step"] for e in ev] == [0, 1, 2, 3, 3] and ev[-1]["state"]["tuned"]
  npz = np.load(io.BytesIO(client.get(f"/api/s/{s['sid']}/export.npz").content))
  assert npz["ws"].shape == (1, m.num_ws, m.w_dim)
  png = client.get(f"/api/s/{s['sid']}/export.png")
  assert png.headers["content-type"] == "image/png"
  saved = post(client, s, "save")
  assert saved.status_code == 200


def test_save_writes_only_into_out(client, studio):
  s = session(client, "ssn")
  assert post(client, s, "save").status_code == 200
  files = sorted(p.suffix for p in studio.out.iterdir() if p.name.startswith("ssn_"))
  assert files == [".npz", ".png"]


@pytest.mark.parametrize("model,op,body,status,text", [
    ("sg2", "heatmap", {"op": "move", "index": 0, "row": 1, "col": 1}, 400, "needs a spatialgan"),
    ("sg2", "resample", {"blocks": [[0, 0]]}, 400, "needs a ssn"),
    ("ssn", "drag", {"handles": [[1, 1]], "targets": [[1, 3]]}, 400, "needs a stylegan2"),
    ("sg2", "composite", {"masks": []}, 400, "needs a regressor"),
    ("sg2", "teleport", {}, 404, "unknown edit"),
    ("sg2", "generate", {"seed": -1}, 400, "seed must lie in"),
    ("sg2", "generate", {"seed": "x"}, 400, "seed must be an integer"),
    ("sg2", "settings", {"noise": "loud"}, 400, "noise must be one of"),
    ("sg2", "settings", {"truncation": "1"}, 400, "truncation must be a number"),
    ("sg2", "drag", {"handles": [[1, 1]], "targets": [[1, 99]]}, 400, "outside the 16x16 image"),
    ("sg2", "drag", {"handles": [[1, 1]], "targets": []}, 400, "at least one target"),
    ("sg2", "drag", {"handles": [[1, 1]], "targets": [[1, 2], [1, 3]]}, 400,
     "1 handle(s) but 2 target(s)"),
    ("sg2", "drag", {"handles": [[1, 1]] * 9, "targets": [[1, 2]] * 9}, 400, "at most 8"),
    ("sg2", "drag", {"handles": "a", "targets": []}, 400, "list of [row, col] pairs"),
    ("sgan", "heatmap", {"op": "move", "index": 99, "row": 1, "col": 1}, 400, "index must lie"),
    ("sgan", "heatmap", {"op": "twist", "index": 0}, 400, "op must be one of move, scale"),
    ("sgan", "heatmap", {"op": "scale", "index": 0, "factor": 0}, 400, "factor must lie"),
    ("sgan", "restyle", {"index": 0}, 400, "needs an indoor model"),
    ("ssn", "resample", {"blocks": [[4, 0]]}, 400, "outside the 4x4 grid"),
    ("ssn", "resample", {"blocks": [[0.5, 0]]}, 400, "not a pair of integers"),
    ("ssn", "resample", {"blocks": []}, 400, "at least one block"),
    ("reg", "composite", {"masks": ["data:image/png;base64,AAAA"]}, 400, "1 masks for 2"),
    ("reg", "composite", {"masks": ["nope", "nope"]}, 400, "PNG data URL"),
    ("reg", "composite", {"masks": ["data:image/png;base64,aGVsbG8=", "x"]}, 400,
     "not a readable image"),
    ("reg", "composite", {"masks": [png_url(np.zeros((8, 8))), png_url(np.zeros((8, 8)))]}, 400,
     "is 8x8; the model makes 16x16"),
    ("reg", "remove_source", {"index": 7}, 400, "index must lie"),
    ("reg", "finetune", {"steps": 2}, 400, "brush a part"),
])
def test_malformed_requests_are_4xx_and_keep_the_state(client, model, op, body, status, text):
  s = session(client, model, seed=4)
  assert_refused(post(client, s, op, body), status, text)
  after = client.get(f"/api/s/{s['sid']}/state").json()
  assert after["image"] == s["image"] and after["history"] == s["history"]


def test_bad_bodies_sessions_models_and_uploads(client):
  s = session(client, "reg")
  assert_refused(raw(client, s, "generate", b"{not json"), 400, "not JSON")
  assert_refused(raw(client, s, "generate", b"[1]"), 400, "JSON object")
  assert_refused(raw(client, s, "generate", b'{"seed": NaN}'), 400,
                 "seed must be an integer")
  assert_refused(client.post("/api/session", json={"model": "nope"}), 404, "no model named")
  assert_refused(client.post("/api/s/nope/generate", json={}), 404, "unknown or expired")
  assert_refused(client.get(f"/api/s/{s['sid']}/export.gif"), 404, "export is .png or .npz")
  assert_refused(upload(client, s, b"\x89PNG\r\n\x1a\nbroken"),
                 400, "the upload is not a readable image")
  big = io.BytesIO()
  Image.new("L", (5000, 4000)).save(big, format="PNG")
  assert_refused(upload(client, s, big.getvalue()), 400,
                 "over 16777216 pixels")
  assert_refused(upload(client, s, b"0" * (17 * 2 ** 20)), 413, "request body over 16777216")
  after = client.get(f"/api/s/{s['sid']}/state").json()
  assert after["sources"] == s["sources"]


def test_a_busy_session_refuses_a_second_edit(client, studio):
  s = session(client, "sg2")
  held = studio.store.get(s["sid"])
  held.acquire()
  try:
    assert_refused(post(client, s, "generate", seed=2), 409, "busy")
  finally:
    held.release()
  assert post(client, s, "generate", seed=2).status_code == 200


def test_two_sessions_edit_concurrently_without_mixing(client):
  from concurrent.futures import ThreadPoolExecutor
  a, b = session(client, "sg2", seed=0), session(client, "sg2", seed=0)

  def edit(s, seed):
    return [post(client, s, "generate", seed=seed + k).json()["seed"] for k in range(3)]
  with ThreadPoolExecutor(2) as pool:
    ra, rb = pool.submit(edit, a, 10), pool.submit(edit, b, 20)
  assert ra.result() == [10, 11, 12] and rb.result() == [20, 21, 22]
  sa = client.get(f"/api/s/{a['sid']}/state").json()
  sb = client.get(f"/api/s/{b['sid']}/state").json()
  assert sa["seed"] == 12 and sb["seed"] == 22
  assert sa["history"][-1] == "seed 12" and sb["history"][-1] == "seed 22"


def test_command_help_and_errors(capsys):
  from jaxspatial.studio import __main__ as cmd
  with pytest.raises(SystemExit):
    cmd.parse_args(["--help"])
  assert "--checkpoint" in capsys.readouterr().out
  assert cmd.is_loopback("127.0.0.1") and cmd.is_loopback("localhost")
  assert not cmd.is_loopback("0.0.0.0")
  from jaxspatial.cli import UserError
  with pytest.raises(UserError, match="no such directory"):
    cmd.build(cmd.parse_args(["--checkpoint", "/nonexistent/x"]))
  with pytest.raises(UserError, match="--port"):
    cmd.main(["--checkpoint", "x", "--port", "0"])


def test_dragger_pads_points_compiles_once_and_matches_drag(studio):
  from jaxspatial.edit import drag as drag_lib
  engine = studio.engines["sg2"]
  m, dragger = engine.model, engine.dragger(False)
  state = engine.new(1)
  ws, noise = state.ws, list(state.noise_maps)        # the maps the studio drags with
  runs, programs = [dragger.start(ws, [[8, 4]], [[8, 9]], noise=noise),
                    dragger.start(ws, [[8, 4], [3, 3]], [[8, 9], [3, 6]], noise=noise)], []
  for run in runs:
    for _ in range(3):
      run.step()
    programs.append(dragger._step._cache_size())
  assert programs[0] == programs[1]                  # 1 and 2 points: no new program
  one = drag_lib.drag(m, ws, [[8, 4]], [[8, 9]], config=drag_lib.DragConfig(max_steps=3))
  padded = runs[0].result()
  np.testing.assert_allclose(padded.ws, one.ws, atol=1e-5)
  np.testing.assert_allclose(padded.handles, one.handles)


def test_finetune_callback_stops_early(studio):
  engine = studio.engines["reg"]
  state = engine.new(0)
  state = state.replace(masks=(np.ones_like(state.masks[0]), state.masks[1]))
  calls = []
  engine.finetune(state, 5, lambda i: calls.append(i) or i == 1)
  assert calls == [0, 1]
