// jaxspatial studio page: one canvas, the controls of the loaded model's kind, and a thin
// client of the JSON API (server.py). Pixel coordinates sent to the server are (row, col) of
// the generator's output; the canvas shows the image scaled up by `scale`.
// The server's Content-Security-Policy enforces Trusted Types: no HTML string ever becomes
// markup here (the browser refuses it), elements are built and filled through textContent.
// Every request carries the launch token as the cookie the page URL's ?token= set.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas"), ctx = canvas.getContext("2d");
const LEVEL_COLOURS = ["#ffcc00", "#33ddff", "#ff55cc"];
const SCALE_STEP = 1.15;           // a centre's sigma per wheel notch, + / − key or button

const studio = window.studio = {
  models: [], model: null, state: null, sid: null, image: new Image(),
  handles: [], targets: [], blocks: new Set(), selected: null, activeSource: 0,
  masks: [], dragMask: null, busy: false, dragging: null, lastEvent: null,
};

function tool() { return document.querySelector('input[name="tool"]:checked')?.value; }
function res() { return studio.model.resolution; }
function scale() { return canvas.width / res(); }
function hasEdit(e) { return studio.model.edits.includes(e); }

function showError(msg) { $("error").textContent = msg || ""; }

async function api(path, body, raw) {
  const opts = { method: body === undefined && !raw ? "GET" : "POST" };
  if (raw) { opts.body = raw; opts.headers = { "Content-Type": "application/octet-stream" }; }
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers = { "Content-Type": "application/json" }; }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) { throw new Error(data.error || `HTTP ${r.status}`); }
  return data;
}

async function edit(op, body = {}, raw) {
  showError("");
  try {
    const st = await api(`/api/s/${studio.sid}/${op}`, body, raw);
    if (st.image) { await setState(st); }
    return st;
  } catch (e) { showError(e.message); return null; }
}

function loadImage(img, url) {
  return new Promise((ok) => { img.onload = ok; img.onerror = ok; img.src = url; });
}

async function setState(st) {      // studio.state changes last, once everything is drawn
  await loadImage(studio.image, st.image);
  $("seed").value = st.seed;
  $("truncation").value = st.truncation; $("truncation-value").textContent = st.truncation;
  $("noise").value = st.noise;
  if (st.ms !== undefined) { $("latency").textContent = `${st.edit}: ${st.ms.toFixed(1)} ms`; }
  if (st.notice) { $("latency").textContent = st.notice; }
  const hist = $("history"); hist.replaceChildren();
  st.history.forEach((h, i) => {
    const li = document.createElement("li"); li.textContent = h;
    if (i === st.index) { li.className = "current"; }
    hist.appendChild(li);
  });
  hist.scrollTop = hist.scrollHeight;
  $("photo-box").classList.toggle("hidden", !st.photo);
  if (st.photo && !$("photo-view").src) { $("photo-view").src = `/api/s/${studio.sid}/photo.png`; }
  $("export-png").href = `/api/s/${studio.sid}/export.png`;
  $("export-npz").href = `/api/s/${studio.sid}/export.npz`;
  showCandidates(st.candidates || []);
  if (st.sources) { await showSources(st); }
  if (st.overlay?.centres) { showCentres(st.overlay.centres); }
  studio.state = st;
  draw();
}

// ------------------------------------------------------------------ drawing

function draw() {
  const s = scale();
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (hasEdit("composite")) { drawRegressor(); return; }
  ctx.drawImage(studio.image, 0, 0, canvas.width, canvas.height);
  const ov = studio.state.overlay || {};
  if (ov.grid) { drawGrid(ov.grid); }
  if (ov.centres) { drawCentres(ov.centres, s); }
  if (studio.dragMask) { tint(studio.dragMask, "rgba(80,200,120,0.35)"); }
  drawPoints(s);
}

function drawGrid([gh, gw]) {
  const bh = canvas.height / gh, bw = canvas.width / gw;
  ctx.strokeStyle = "rgba(255,255,255,0.5)"; ctx.lineWidth = 1;
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      if (studio.blocks.has(`${r},${c}`)) {
        ctx.fillStyle = "rgba(255,60,60,0.35)"; ctx.fillRect(c * bw, r * bh, bw, bh);
      }
      ctx.strokeRect(c * bw + 0.5, r * bh + 0.5, bw, bh);
    }
  }
}

function drawCentres(centres, s) {
  const shown = new Set([...document.querySelectorAll("#levels input:checked")].map((i) => +i.value));
  const objects = isMultiObject(centres);
  for (const c of centres) {
    if (!shown.has(c.level)) { continue; }
    const [y, x] = centrePos(c);
    if (!c.present) {                                      // removed: a grey cross where it was
      ctx.strokeStyle = "#888"; ctx.lineWidth = c.index === studio.selected ? 3 : 1.5;
      ctx.beginPath(); ctx.moveTo(x - 5, y - 5); ctx.lineTo(x + 5, y + 5);
      ctx.moveTo(x + 5, y - 5); ctx.lineTo(x - 5, y + 5); ctx.stroke();
      continue;
    }
    const rad = Math.sqrt(c.sigma) * canvas.width / 4;          // exp(-d²/σ) = 1/e at d = √σ
    ctx.strokeStyle = LEVEL_COLOURS[c.level % 3]; ctx.lineWidth = c.index === studio.selected ? 3 : 1.5;
    ctx.beginPath(); ctx.arc(x, y, rad, 0, 2 * Math.PI); ctx.stroke();
    ctx.fillStyle = LEVEL_COLOURS[c.level % 3];
    ctx.beginPath(); ctx.arc(x, y, 6 - 1.5 * c.level, 0, 2 * Math.PI); ctx.fill();
    if (objects) { ctx.font = "bold 14px system-ui"; ctx.fillText(String(c.index), x + 8, y - 8); }
  }
}

// ------------------------------------------------------------------ centre selection

// An indoor model's centres are its objects (several level-0 centres, one style code each).
function isMultiObject(centres) { return centres.filter((c) => c.level === 0).length > 1; }

function centreName(c, centres) {
  const name = isMultiObject(centres) ? `object ${c.index}` : `centre ${c.index} (level ${c.level})`;
  return c.present ? name : `${name}, removed`;
}

// The centre list beside the canvas: every centre is selectable by keyboard there, removed
// ones included (marked; undo brings them back), and the edit buttons follow the selection.
function showCentres(centres) {
  const none = document.createElement("option"); none.value = ""; none.textContent = "none";
  $("centre").replaceChildren(none, ...centres.map((c) => {
    const o = document.createElement("option"); o.value = c.index;
    o.textContent = centreName(c, centres); o.dataset.present = c.present;
    return o;
  }));
  if (studio.selected !== null && studio.selected >= centres.length) { studio.selected = null; }
  syncSelection(centres);
}

function syncSelection(centres) {
  const c = studio.selected === null ? null : centres[studio.selected];
  $("centre").value = c ? c.index : "";
  for (const id of ["centre-smaller", "centre-larger", "centre-remove", "restyle"]) {
    $(id).disabled = !(c && c.present);
  }
}

function select(index) {
  studio.selected = index;
  syncSelection(studio.state.overlay.centres);
  draw();
}

function selectedCentre() {
  const c = studio.selected === null ? null : studio.state.overlay.centres?.[studio.selected];
  return c && c.present ? c : null;
}

function scaleSelected(up) {
  const c = selectedCentre();
  return c && edit("heatmap", { op: "scale", index: c.index, factor: up ? SCALE_STEP : 1 / SCALE_STEP });
}

function removeSelected() {
  const c = selectedCentre();
  return c && edit("heatmap", { op: "remove", index: c.index });
}

function centrePos(c) {
  const d = studio.dragging;
  const s = scale();
  let row = c.row, col = c.col;
  if (d && d.index !== undefined && (d.index === c.index || d.children.includes(c.index))) {
    row += d.dr; col += d.dc;
  }
  return [(row + 0.5) * s, (col + 0.5) * s];
}

function drawPoints(s) {
  const dot = (p, colour) => {
    ctx.fillStyle = colour; ctx.beginPath();
    ctx.arc((p[1] + 0.5) * s, (p[0] + 0.5) * s, 5, 0, 2 * Math.PI); ctx.fill();
  };
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 2;
  studio.targets.forEach((t, i) => {
    const h = studio.handles[i];
    ctx.beginPath(); ctx.moveTo((h[1] + 0.5) * s, (h[0] + 0.5) * s);
    ctx.lineTo((t[1] + 0.5) * s, (t[0] + 0.5) * s); ctx.stroke();
  });
  studio.handles.forEach((p) => dot(p, "#ff3030"));
  studio.targets.forEach((p) => dot(p, "#3060ff"));
}

function tint(maskCanvas, colour) {
  const tmp = document.createElement("canvas"); tmp.width = res(); tmp.height = res();
  const t = tmp.getContext("2d");
  t.drawImage(maskCanvas, 0, 0); t.globalCompositeOperation = "source-in";
  t.fillStyle = colour; t.fillRect(0, 0, res(), res());
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function newMask() {
  const m = document.createElement("canvas"); m.width = res(); m.height = res();
  return m;
}

// ------------------------------------------------------------------ mouse

function pixelAt(ev) {
  const r = canvas.getBoundingClientRect();
  const s = scale() * r.width / canvas.width;
  const clamp = (v) => Math.min(res() - 1, Math.max(0, v));
  return [clamp((ev.clientY - r.top) / s - 0.5), clamp((ev.clientX - r.left) / s - 0.5)];
}

function nearestCentre(p) {
  const ov = studio.state.overlay;
  if (!ov.centres) { return null; }
  const shown = new Set([...document.querySelectorAll("#levels input:checked")].map((i) => +i.value));
  let best = null, bestD = (12 / scale()) ** 2;
  for (const c of ov.centres) {
    if (!c.present || !shown.has(c.level)) { continue; }
    const d = (c.row - p[0]) ** 2 + (c.col - p[1]) ** 2;
    if (d < bestD) { best = c; bestD = d; }
  }
  return best;
}

function descendants(i) {
  const cs = studio.state.overlay.centres, out = [];
  let frontier = [i];
  while (frontier.length) {
    const kids = cs.filter((c) => frontier.includes(c.parent)).map((c) => c.index);
    out.push(...kids); frontier = kids;
  }
  return out;
}

// A brush stroke from the previous point of this press (if any) to p, on a mask canvas.
function paint(maskCanvas, p, erase) {
  const m = maskCanvas.getContext("2d"), from = studio.lastPaint || p;
  m.globalCompositeOperation = erase ? "destination-out" : "source-over";
  m.strokeStyle = "#fff"; m.lineCap = "round";
  m.lineWidth = Math.max(1, +$("brush").value * res() / 32);
  m.beginPath(); m.moveTo(from[1] + 0.5, from[0] + 0.5); m.lineTo(p[1] + 0.5, p[0] + 0.5); m.stroke();
  studio.lastPaint = p;
}

function blockAt(p) {
  const [gh, gw] = studio.state.overlay.grid;
  return `${Math.floor(p[0] / res() * gh)},${Math.floor(p[1] / res() * gw)}`;
}

canvas.addEventListener("mousedown", (ev) => {
  if (studio.busy) { return; }
  const p = pixelAt(ev), t = tool();
  studio.pressed = true; studio.lastPaint = null;
  if (t === "points") {
    if (studio.handles.length === studio.targets.length) { studio.handles.push(p); }
    else { studio.targets.push(p); }
  } else if (t === "mask") {
    studio.dragMask = studio.dragMask || newMask(); paint(studio.dragMask, p, ev.shiftKey);
  } else if (t === "heatmap") {
    const c = nearestCentre(p);
    select(c ? c.index : null);
    if (c) { studio.dragging = { index: c.index, start: p, dr: 0, dc: 0, children: descendants(c.index) }; }
  } else if (t === "blocks") {
    const b = blockAt(p);
    if (studio.blocks.has(b)) { studio.blocks.delete(b); } else { studio.blocks.add(b); }
  } else if (t === "blockbrush") {
    studio.blocks.add(blockAt(p));
  } else if (t === "keep" || t === "erase") {
    paint(studio.masks[studio.activeSource], p, t === "erase");
  }
  draw();
});

canvas.addEventListener("mousemove", (ev) => {
  if (!studio.pressed) { return; }
  const p = pixelAt(ev), t = tool();
  if (t === "mask") { paint(studio.dragMask, p, ev.shiftKey); }
  else if (t === "heatmap" && studio.dragging) {
    studio.dragging.dr = p[0] - studio.dragging.start[0];
    studio.dragging.dc = p[1] - studio.dragging.start[1];
  } else if (t === "blockbrush") { studio.blocks.add(blockAt(p)); }
  else if (t === "keep" || t === "erase") { paint(studio.masks[studio.activeSource], p, t === "erase"); }
  else { return; }
  draw();
});

window.addEventListener("mouseup", async () => {
  if (!studio.pressed) { return; }
  studio.pressed = false;
  const t = tool(), d = studio.dragging;
  if (t === "heatmap" && d) {
    studio.dragging = null;
    const c = studio.state.overlay.centres[d.index];
    if (Math.abs(d.dr) + Math.abs(d.dc) > 0.05) {
      const clamp = (v) => Math.min(res() - 1, Math.max(0, v));
      await edit("heatmap", { op: "move", index: d.index, row: clamp(c.row + d.dr), col: clamp(c.col + d.dc) });
    }
    draw();
  } else if (t === "keep" || t === "erase") {
    await composite();
  }
});

canvas.addEventListener("wheel", async (ev) => {
  if (tool() !== "heatmap") { return; }
  ev.preventDefault();
  const c = nearestCentre(pixelAt(ev));
  const index = c ? c.index : studio.selected;
  if (index === null || index === undefined) { return; }
  select(index);
  await scaleSelected(ev.deltaY < 0);
}, { passive: false });

// The keyboard's heatmap edits on the focused canvas, for the selected centre: arrows move it
// one pixel, + / − scale it, Delete / Backspace remove it.
const ARROWS = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
canvas.addEventListener("keydown", async (ev) => {
  const c = hasEdit("heatmaps") ? selectedCentre() : null;
  if (!c) { return; }
  if (ev.key === "Delete" || ev.key === "Backspace") { ev.preventDefault(); await removeSelected(); }
  else if (ev.key === "+" || ev.key === "=") { await scaleSelected(true); }
  else if (ev.key === "-") { await scaleSelected(false); }
  else if (ARROWS[ev.key]) {
    ev.preventDefault();
    const [dr, dc] = ARROWS[ev.key], clamp = (v) => Math.min(res() - 1, Math.max(0, v));
    const row = clamp(c.row + dr), col = clamp(c.col + dc);
    if (row !== c.row || col !== c.col) { await edit("heatmap", { op: "move", index: c.index, row, col }); }
  }
});

// ------------------------------------------------------------------ streamed edits

async function stream(op, body, onEvent) {
  showError("");
  studio.busy = true;
  try {
    const r = await fetch(`/api/s/${studio.sid}/${op}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!r.ok) { const e = await r.json(); throw new Error(e.error); }
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) { break; }
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, cut); buf = buf.slice(cut + 2);
        if (!line.startsWith("data: ")) { continue; }
        const ev = JSON.parse(line.slice(6));
        studio.lastEvent = ev;
        if (ev.type === "error") { throw new Error(ev.error); }
        await onEvent(ev);
        if (ev.state) { await setState(ev.state); }
      }
    }
  } catch (e) { showError(e.message); }
  finally { studio.busy = false; }
}

async function startDrag() {
  if (!studio.targets.length) { showError("click a handle, then its target"); return; }
  const body = { handles: studio.handles.slice(0, studio.targets.length), targets: studio.targets,
                 w_space: $("space").value === "w", coarse: $("coarse").checked,
                 max_steps: +$("max-steps").value };
  if (studio.dragMask) { body.mask = binaryMask(studio.dragMask).toDataURL("image/png"); }
  $("step").textContent = "0";
  showReport([]);
  await stream("drag", body, async (ev) => {
    $("step").textContent = ev.step;
    $("drag-info").textContent = ev.type === "done"
      ? `${ev.converged ? "arrived" : "stopped"}, ${ev.ms_per_step} ms/step` : `${ev.ms_per_step} ms/step`;
    if (ev.report) { showReport(ev.report); }
    studio.handles = ev.handles.concat(studio.handles.slice(studio.targets.length));
    if (!ev.state) { await loadImage(studio.image, ev.image); draw(); }
  });
}

// What the finished drag did around each handle, as `python -m jaxspatial.drag` prints it:
// "arrived" only says the tracked point got there, so the content's own move and the
// warnings (uniform patch, nothing changed, content moved under half the way) show beside it.
function showReport(report) {
  const line = (text, cls) => {
    const div = document.createElement("div"); div.textContent = text; div.className = cls;
    return div;
  };
  $("drag-report").replaceChildren(...report.flatMap((h) =>
    [line(h.text, "handle"), ...h.warnings.map((w) => line(w, "warning"))]));
}

// The uploaded photo projected into the model: progress and the projection so far stream in,
// beside the photo itself; the drag points and mask of the image before do not apply to it.
async function project() {
  studio.handles = []; studio.targets = []; studio.dragMask = null; showReport([]);
  $("photo-view").src = `/api/s/${studio.sid}/photo.png?n=${Date.now()}`;
  $("photo-box").classList.remove("hidden");
  draw();
  const steps = +$("project-steps").value;
  $("project-progress").max = steps; $("project-progress").value = 0;
  await stream("project", { steps, loss: $("project-loss").value, space: $("project-space").value }, async (ev) => {
    $("project-progress").value = ev.step;
    const fit = ev.psnr === undefined ? "" : `, PSNR ${ev.psnr.toFixed(1)} dB`;
    const loss = ev.loss === undefined ? "" : `, loss ${ev.loss.toPrecision(3)}`;
    $("project-info").textContent = ev.type === "done"
      ? `${ev.stopped ? "stopped" : "done"} at step ${ev.step}${fit}, ${ev.ms_per_step} ms/step`
      : `step ${ev.step} / ${ev.steps}${loss}${fit}`;
    if (ev.image) { await loadImage(studio.image, ev.image); draw(); }
  });
}

// A mask canvas as opaque black/white (alpha painted -> white), for the server.
function binaryMask(maskCanvas) {
  const out = newMask(), o = out.getContext("2d");
  o.fillStyle = "#000"; o.fillRect(0, 0, res(), res()); o.drawImage(maskCanvas, 0, 0);
  return out;
}

// ------------------------------------------------------------------ SSN candidates

function showCandidates(urls) {
  const box = $("candidates"); box.replaceChildren();
  urls.forEach((u, i) => {
    const img = document.createElement("img"); img.src = u; img.title = `candidate ${i}`;
    img.dataset.index = i;
    img.onclick = () => edit("pick", { index: i });
    box.appendChild(img);
  });
}

function selectedBlocks() { return [...studio.blocks].map((b) => b.split(",").map(Number)); }

// ------------------------------------------------------------------ regressor collage

async function showSources(st) {
  studio.masks = await Promise.all(st.masks.map(async (url) => {
    const img = new Image(); await loadImage(img, url);
    const m = newMask(), g = m.getContext("2d");
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, res(), res());
    for (let i = 0; i < d.data.length; i += 4) { d.data[i + 3] = d.data[i]; }
    g.putImageData(d, 0, 0);
    return m;
  }));
  studio.sourceImages = await Promise.all(st.sources.map(async (url) => {
    const img = new Image(); await loadImage(img, url); return img;
  }));
  studio.activeSource = Math.min(studio.activeSource, st.sources.length - 1);
  const box = $("sources"); box.replaceChildren();
  studio.sourceImages.forEach((img, i) => {
    const c = document.createElement("canvas"); c.width = res(); c.height = res();
    c.getContext("2d").drawImage(img, 0, 0); c.title = `source ${i}`;
    c.className = i === studio.activeSource ? "active" : "";
    c.onclick = async () => { studio.activeSource = i; await showSources(studio.state); draw(); };
    box.appendChild(c);
  });
  const r = $("result").getContext("2d"); r.imageSmoothingEnabled = false;
  r.drawImage(studio.image, 0, 0, 256, 256);
}

function drawRegressor() {
  const img = studio.sourceImages?.[studio.activeSource];
  if (!img) { return; }
  ctx.globalAlpha = 0.45; ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
  const tmp = newMask(), t = tmp.getContext("2d");
  t.drawImage(img, 0, 0); t.globalCompositeOperation = "destination-in";
  t.drawImage(studio.masks[studio.activeSource], 0, 0);
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

async function composite() {
  await edit("composite", { masks: studio.masks.map((m) => binaryMask(m).toDataURL("image/png")) });
}

// ------------------------------------------------------------------ set-up

function configure() {
  // the controls follow the engine's edits, never the kind: a family registered at run time
  // with a StyleGAN2-like engine gets the generator's controls
  const show = (sel, on) => document.querySelectorAll(sel).forEach((e) => e.classList.toggle("hidden", !on));
  show(".only-generator", hasEdit("generate"));
  show(".only-drag", hasEdit("drag"));
  show(".only-project", hasEdit("project"));
  if (studio.model.projection) {
    $("project-loss").replaceChildren(...studio.model.projection.losses.map((l) => {
      const o = document.createElement("option"); o.textContent = l; return o;
    }));
    $("project-steps").value = studio.model.projection.steps;
    $("project-space").replaceChildren(...studio.model.projection.spaces.map((sp) => {
      const o = document.createElement("option"); o.value = sp;
      o.textContent = { w: "W", wplus: "W+" }[sp] || sp; return o;
    }));
  }
  show(".only-spatialgan", hasEdit("heatmaps"));
  show(".only-indoor", hasEdit("restyle"));
  show(".only-ssn", hasEdit("resample"));
  show(".only-regressor", hasEdit("composite"));
  const first = hasEdit("heatmaps") ? "heatmap" : hasEdit("resample") ? "blocks"
    : hasEdit("composite") ? "keep" : "points";
  document.querySelector(`input[name="tool"][value="${first}"]`).checked = true;
  studio.handles = []; studio.targets = []; studio.blocks.clear(); studio.dragMask = null;
  studio.selected = null; studio.activeSource = 0;
}

async function openSession(name) {
  studio.model = studio.models.find((m) => m.name === name);
  configure();
  const key = `jaxspatial-studio:${name}`;
  let st = null;
  const sid = sessionStorage.getItem(key);         // per tab: a reload keeps this tab's history
  if (sid) { st = await api(`/api/s/${sid}/state`).catch(() => null); }
  if (!st) { st = await api("/api/session", { model: name, seed: +$("seed").value || 0 }); }
  sessionStorage.setItem(key, st.sid);
  studio.sid = st.sid;
  const levels = $("levels"); levels.replaceChildren();
  const lv = [...new Set((st.overlay.centres || []).map((c) => c.level))];
  lv.forEach((l) => {
    const lab = document.createElement("label"), box = document.createElement("input");
    box.type = "checkbox"; box.value = l; box.checked = true; box.onchange = draw;
    lab.append(box, ` level ${l}`);
    lab.style.color = LEVEL_COLOURS[l % 3];
    levels.appendChild(lab);
  });
  await setState(st);
}

function bind() {
  const on = (id, f) => $(id).addEventListener("click", f);
  // A projected photo shows its own noise ("projected"); a new image starts from const.
  const noiseMode = () => ($("noise").value === "projected" ? "const" : $("noise").value);
  on("new", () => edit("generate", { seed: +$("seed").value, truncation: +$("truncation").value, noise: noiseMode() }));
  $("truncation").addEventListener("input", () => { $("truncation-value").textContent = $("truncation").value; });
  $("truncation").addEventListener("change", () => edit("settings", { truncation: +$("truncation").value, noise: noiseMode() }));
  $("noise").addEventListener("change", () => edit("settings", { truncation: +$("truncation").value, noise: $("noise").value }));
  on("undo", () => edit("undo")); on("redo", () => edit("redo")); on("reset", () => edit("reset"));
  on("save", async () => { if (await edit("save")) { $("latency").textContent = "saved to --out"; } });
  on("drag-start", startDrag);
  on("drag-stop", () => api(`/api/s/${studio.sid}/stop`, {}));
  on("points-clear", () => { studio.handles = []; studio.targets = []; draw(); });
  on("mask-clear", () => { studio.dragMask = null; draw(); });
  $("centre").addEventListener("change", () => select($("centre").value === "" ? null : +$("centre").value));
  on("centre-smaller", () => scaleSelected(false));
  on("centre-larger", () => scaleSelected(true));
  on("centre-remove", removeSelected);
  on("new-latent", () => edit("new_latent", { seed: studio.state.seed + 1 }));
  on("restyle", () => selectedCentre() && edit("restyle", { index: studio.selected, seed: Date.now() % 100000 }));
  on("resample", () => edit("resample", { blocks: selectedBlocks(), seed: Date.now() % 1000000 }));
  on("blocks-clear", () => { studio.blocks.clear(); draw(); });
  on("source-add", () => edit("source", { seed: Date.now() % 100000 }));
  on("source-remove", () => edit("remove_source", { index: studio.activeSource }));
  on("keep-all", async () => {
    const g = studio.masks[studio.activeSource].getContext("2d");
    g.globalCompositeOperation = "source-over"; g.fillStyle = "#fff"; g.fillRect(0, 0, res(), res());
    await composite();
  });
  $("upload").addEventListener("change", async () => {
    const f = $("upload").files[0];
    if (f) { await edit("upload", undefined, await f.arrayBuffer()); $("upload").value = ""; }
  });
  $("photo").addEventListener("change", async () => {
    const f = $("photo").files[0];
    if (!f) { return; }
    $("photo").value = "";
    if (await edit("upload", undefined, await f.arrayBuffer())) { await project(); }
  });
  on("project-stop", () => api(`/api/s/${studio.sid}/stop`, {}));
  on("finetune", () => stream("finetune", { steps: 30 }, async (ev) => {
    $("finetune-progress").max = ev.steps; $("finetune-progress").value = ev.step;
  }));
  on("finetune-stop", () => api(`/api/s/${studio.sid}/stop`, {}));
  $("model").addEventListener("change", () => openSession($("model").value));
}

async function main() {
  bind();
  try {
    const info = await api("/api/models");
    studio.models = info.models;
    $("save").hidden = !info.save;
    for (const m of info.models) {
      const o = document.createElement("option"); o.value = m.name;
      o.textContent = `${m.name} (${m.kind}, ${m.resolution}px)`; $("model").appendChild(o);
    }
    const wanted = new URLSearchParams(location.search).get("model");
    if (wanted && info.models.some((m) => m.name === wanted)) { $("model").value = wanted; }
    await openSession($("model").value);
    $("status").textContent = "ready";
  } catch (e) { $("status").textContent = "error"; showError(e.message); }
}

main();
