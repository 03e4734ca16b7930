"""Helpers of the studio's API tests: sessions, edits, server-sent events, refusals, images."""

import base64
import io
import json

import numpy as np
from PIL import Image


def image_of(url: str) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), np.int16)


def png_url(a: np.ndarray) -> str:
  buf = io.BytesIO()
  Image.fromarray(a.astype(np.uint8)).save(buf, format="PNG")
  return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def session(client, model, seed=0):
  r = client.post("/api/session", json={"model": model, "seed": seed})
  assert r.status_code == 200, r.text
  return r.json()


def upload(client, s, data: bytes, ctype="image/png"):
  return client.post(f"/api/s/{s['sid']}/upload", content=data, headers={"Content-Type": ctype})


def raw(client, s, name, data: bytes, ctype="application/json"):
  return client.post(f"/api/s/{s['sid']}/{name}", content=data, headers={"Content-Type": ctype})


def post(client, s, name, body=None, **fields):
  return client.post(f"/api/s/{s['sid']}/{name}", json={**(body or {}), **fields})


def events(response) -> list[dict]:
  return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def assert_refused(r, status, text):
  assert r.status_code == status, r.text
  assert text in r.json()["error"] and "\n" not in r.json()["error"]
