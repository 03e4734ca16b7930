"""Progress without a terminal (jaxspatial.cli.progress): with output redirected, piped through
``tee`` or in a notebook the tqdm bar is off, and before these lines a demo training printed
nothing for its whole run. The training loop's lines are tested in test_faults.py."""

import io
import os
import re
import sys
import time

import pytest

from jaxspatial import cli


@pytest.fixture
def lines_mode(monkeypatch):
  """Plain lines (the suite turns progress off), one per update."""
  monkeypatch.delenv("JAXSPATIAL_NO_PROGRESS", raising=False)
  monkeypatch.setenv("JAXSPATIAL_PROGRESS_SECONDS", "0")


class _Tty(io.StringIO):
  def isatty(self):
    return True


def test_the_bar_needs_both_streams_on_a_terminal(monkeypatch):
  monkeypatch.delenv("JAXSPATIAL_NO_PROGRESS", raising=False)
  monkeypatch.setattr(sys, "stdout", _Tty())
  monkeypatch.setattr(sys, "stderr", _Tty())
  assert cli.progress_mode() == "bar"
  monkeypatch.setattr(sys, "stdout", io.StringIO())      # | tee log: stderr still a terminal
  assert cli.progress_mode() == "lines"
  assert isinstance(cli.progress(total=3), cli.ProgressLines)
  assert not isinstance(cli.progress(total=3, enabled=False), cli.ProgressLines)
  monkeypatch.setenv("JAXSPATIAL_NO_PROGRESS", "1")
  assert cli.progress_mode() == "off"


def test_lines_give_count_rate_postfix_and_eta_then_a_last_line(lines_mode, capsys):
  with cli.progress(total=4, desc="train", unit="step") as bar:
    for _ in range(3):
      time.sleep(0.01)
      bar.set_postfix(kimg="0.1", g_loss=1.25)
      bar.update(1)
  out = capsys.readouterr().out.splitlines()
  assert len(out) == 4, out
  assert out[0].startswith("train: 1/4 step (25%), kimg=0.1, g_loss=1.25, ")   # no rate yet
  assert re.match(r"train: 3/4 step \(75%\), [\d.e+]+ step/s, kimg=0.1, g_loss=1.25, \d+s "
                  r"elapsed, ETA \d+s$", out[2]), out[2]
  assert out[3].startswith("train: 3/4 step") and out[3].endswith("(ended early)")


def test_nested_progress_shows_both_and_iteration_closes(lines_mode, capsys):
  for _ in cli.progress(range(2), desc="reproduce", unit="run"):
    for _ in cli.progress(range(1), desc="train", unit="step"):
      pass
  out = capsys.readouterr().out.splitlines()
  assert out[0].startswith("reproduce: 0/2 run (0%), ") and " | train: 1/1 step (100%)" in out[0]
  assert out[-1].startswith("reproduce: 2/2 run (100%)") and out[-1].endswith("(finished)")
  assert not cli.ProgressLines._alive()


def test_a_slow_step_still_gets_a_line(monkeypatch, capsys):
  """The timer prints while nothing updates (a first step compiling for minutes)."""
  monkeypatch.delenv("JAXSPATIAL_NO_PROGRESS", raising=False)
  monkeypatch.setenv("JAXSPATIAL_PROGRESS_SECONDS", "0.05")
  printed = ""
  with cli.progress(total=10, desc="project", unit="step"):
    deadline = time.monotonic() + 10
    while "project: 0/10 step (0%)" not in printed and time.monotonic() < deadline:
      time.sleep(0.05)
      printed += capsys.readouterr().out
  assert "project: 0/10 step (0%)" in printed


def test_durations_read_as_minutes_and_hours():
  assert [cli._duration(s) for s in (5, 65, 7300)] == ["5s", "1m05s", "2h01m"]


def test_a_command_line_reaches_a_pipe_before_the_command_ends():
  """stdout to a file or pipe is block-buffered: a command's line ("resuming from step ...")
  arrived only at its exit. The child prints one line, works for 2 s and ends without flushing
  (``os._exit``), so a line still in the buffer never arrives."""
  import subprocess
  child = ("import importlib.util, os, time; "        # cli.py alone: no jax import to wait for
           f"spec = importlib.util.spec_from_file_location('cli', {cli.__file__!r}); "
           "cli = importlib.util.module_from_spec(spec); spec.loader.exec_module(cli); "
           "cli.run(lambda: (print('started'), time.sleep(2))); os._exit(0)")
  env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
  proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                          env=env)
  assert proc.stdout.readline().strip() == "started"
  arrived = time.monotonic()
  proc.wait(timeout=60)
  assert time.monotonic() - arrived > 1.0
