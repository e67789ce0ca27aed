"""The error policy (pyaimc.errors): every bad input and fault ends in a non-zero exit, one line
naming what is wrong, no traceback, no output and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _noise_helpers import EXAMPLE_MODEL

from pyaimc.cli import main
from pyaimc.errors import EXIT_BUDGET, EXIT_FAILED, EXIT_INPUT, EXIT_OUTPUT, exit_code, message

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DATA = ROOT / "calibration_data" / "example"


def fails(capsys, argv, code, *words):
    """Run the command; it must exit with ``code`` and print exactly one error line holding
    ``words`` and no traceback."""
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    lines = [ln for ln in out.err.strip().splitlines() if ln.strip()]
    assert rc == code, (rc, out.err)
    assert len(lines) == 1, out.err
    assert lines[0].startswith(f"pyaimc {argv[0]}: error: "), lines[0]
    assert "Traceback" not in out.err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def nothing_in(folder: Path, *keep: str) -> bool:
    """No file in ``folder`` but ``keep`` (no output, no temporary file)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep) == []


def _radar(path: Path, rows: int = 6, cycles: int = 20, scale: float = 1.0, bad=None) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(rows):
        vals = []
        for _ in range(cycles):
            vals += [f"{rng.uniform(8e4, 2e5) * scale:.6g}", f"{rng.uniform(4e3, 9e3) * scale:.6g}"]
        if bad is not None and i == 2:
            vals[3] = bad
        lines.append("\t".join([f"{200 + i}.000", *vals]))
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- the policy itself
def test_exit_codes_and_messages_of_standard_errors():
    assert exit_code(FileNotFoundError("x")) == EXIT_INPUT
    assert exit_code(MemoryError()) == EXIT_BUDGET
    assert exit_code(OSError(28, "No space left on device", "out.npz")) == EXIT_OUTPUT
    assert message(PermissionError(13, "Permission denied", "/x/y.json")) == \
        "/x/y.json: permission denied"
    assert message(IsADirectoryError(21, "Is a directory", "out")).endswith("(expected a file)")
    internal = message(KeyError("boom")) if exit_code(KeyError("boom")) == 1 else ""
    assert internal == ""  # a KeyError is bad input (a missing field), not an internal error
    assert "run with --debug" in message(ZeroDivisionError("x"))


# --------------------------------------------------------------------------- fit: inputs
def test_fit_bad_inputs(tmp_path, capsys):
    out = tmp_path / "m.json"
    fails(capsys, ["fit", tmp_path / "nope.csv", "-o", out], EXIT_INPUT, "nope.csv", "no such")
    fails(capsys, ["fit", tmp_path, "-o", out], EXIT_INPUT, "is a directory")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fails(capsys, ["fit", fifo, "-o", out], EXIT_INPUT, "not a regular file")
    (tmp_path / "empty.npz").write_bytes(b"")
    fails(capsys, ["fit", tmp_path / "empty.npz", "-o", out], EXIT_INPUT, "empty file")
    good = (EXAMPLE_DATA / "features.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    fails(capsys, ["fit", tmp_path / "cut.npz", "-o", out], EXIT_INPUT, "cut.npz")
    np.savez(tmp_path / "obj.npz", R_HRS=np.array([[object()]], dtype=object))
    fails(capsys, ["fit", tmp_path / "obj.npz", "-o", out], EXIT_INPUT, "obj.npz")
    assert nothing_in(tmp_path, "fifo", "empty.npz", "cut.npz", "obj.npz")


def test_implausible_values_are_refused_unless_accepted(tmp_path, capsys):
    one = _radar(tmp_path / "one.csv", bad="1e300")
    line = fails(capsys, ["fit", one, "-o", tmp_path / "m.json"], EXIT_INPUT,
                 "one.csv", "row 3", "not plausible", "--accept-implausible")
    assert "1e+300" in line
    for scale in (1e300, 1e-300):
        path = _radar(tmp_path / f"s{scale:g}.csv", scale=scale)
        fails(capsys, ["fit", path, "-o", tmp_path / "m.json"], EXIT_INPUT, "not plausible")
    assert not (tmp_path / "m.json").exists()
    # the override reads a file outside the ranges on purpose (milliohm-scaled resistances)
    milli = _radar(tmp_path / "milli.csv", rows=8, cycles=40, scale=1e-3)
    assert main(["fit", str(milli), "-o", str(tmp_path / "m.json"), "--max-var-order", "2",
                 "--accept-implausible"]) == 0


def test_weak_messages_of_small_data_say_what_to_do(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "one_cycle.npz", R_HRS=rng.uniform(8e4, 2e5, (10, 1)),
             R_LRS=rng.uniform(4e3, 9e3, (10, 1)))
    fails(capsys, ["fit", tmp_path / "one_cycle.npz", "-o", tmp_path / "m.json"], EXIT_INPUT,
          "cycle")
    np.savez(tmp_path / "small.npz", R_HRS=rng.uniform(8e4, 2e5, (6, 25)),
             R_LRS=rng.uniform(4e3, 9e3, (6, 25)))
    fails(capsys, ["fit", tmp_path / "small.npz", "-o", tmp_path / "m.json"], EXIT_INPUT,
          "--max-var-order 5 or less")
    assert main(["fit", str(tmp_path / "small.npz"), "-o", str(tmp_path / "m.json"),
                 "--max-var-order", "5"]) == 0


def test_a_byte_order_mark_is_read(tmp_path):
    path = _radar(tmp_path / "bom.csv", rows=8, cycles=40)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert main(["fit", str(path), "-o", str(tmp_path / "m.json"), "--max-var-order", "2"]) == 0


# --------------------------------------------------------------------------- fit: outputs
def test_fit_outputs_are_checked_before_work_and_written_as_a_set(tmp_path, capsys):
    data = _radar(tmp_path / "d.csv", rows=8, cycles=40)
    (tmp_path / "dir.json").mkdir()
    fails(capsys, ["fit", data, "-o", tmp_path / "dir.json"], EXIT_OUTPUT, "is a folder")
    (tmp_path / "report").write_text("a file")
    t0 = time.perf_counter()
    fails(capsys, ["fit", data, "-o", tmp_path / "m.json", "--report", tmp_path / "report"],
          EXIT_OUTPUT, "report", "is a file")
    assert time.perf_counter() - t0 < 5  # refused before fitting
    assert not (tmp_path / "m.json").exists()
    fails(capsys, ["fit", data, "-o", "/proc/pyaimc-none/m.json"], EXIT_OUTPUT, "/proc")
    assert nothing_in(tmp_path, "d.csv", "dir.json", "report")


# --------------------------------------------------------------------------- models at load
def _model_doc():
    return json.loads(Path(EXAMPLE_MODEL).read_text())


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["mixture"]["means"][0].__setitem__(0, 1e6), ("mixture.means", "plausible")),
    (lambda d: d["mixture"].update(weights=[-0.5, 1.5] if len(d["mixture"]["weights"]) == 2
                                   else [1.5]), ("mixture.weights",)),
    (lambda d: d["mixture"].update(weights=[w * 2 for w in d["mixture"]["weights"]]),
     ("mixture.weights sum to",)),
    (lambda d: d["mixture"]["chols"][0][0].__setitem__(1, 0.3), ("not lower-triangular",)),
    (lambda d: d["mixture"]["chols"][0][0].__setitem__(0, -0.1), ("not positive definite",)),
    (lambda d: d["var"]["coefs"][0][0].__setitem__(0, 1.5), ("unstable",)),
    (lambda d: d["iv"].update(temperature=-5.0), ("temperature",)),
])
def test_implausible_models_are_refused_at_load(tmp_path, capsys, edit, words):
    doc = _model_doc()
    edit(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    fails(capsys, ["sample", path, "--devices", "4", "--cycles", "4", "-o", tmp_path / "s.npz"],
          EXIT_INPUT, "bad.json", *words)
    assert not (tmp_path / "s.npz").exists()


def test_sizes_are_checked_before_memory_is_taken(tmp_path, capsys):
    fails(capsys, ["sample", EXAMPLE_MODEL, "--devices", 1_000_000, "--cycles", 1_000_000, "-o",
                   tmp_path / "s.npz"], EXIT_INPUT, "--devices x --cycles")
    fails(capsys, ["export", "ngspice", EXAMPLE_MODEL, "-o", tmp_path / "lib", "--devices",
                   1_000_000, "--cycles", 1000], EXIT_INPUT, "--devices x --cycles")


# --------------------------------------------------------------------------- exports
def test_export_writes_all_or_nothing(tmp_path, capsys, monkeypatch):
    import pyaimc.compact.veriloga as va

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", "devices.json")

    monkeypatch.setattr(va, "write_devices_json", broken)
    fails(capsys, ["export", "ngspice", EXAMPLE_MODEL, "-o", tmp_path / "lib", "--devices", 2,
                   "--cycles", 3], EXIT_OUTPUT, "no space left")
    assert nothing_in(tmp_path)  # neither the .lib nor a temporary folder
    fails(capsys, ["export", "ngspice", EXAMPLE_MODEL, "-o", tmp_path / "lib", "--name", "x y"],
          EXIT_INPUT, "--name", "identifier")


def test_export_noise_checks_its_options_before_simulating(tmp_path, capsys):
    t0 = time.perf_counter()
    for opt, value in (("--dac-bits", 1), ("--adc-bits", 40), ("--bandwidth", -1),
                       ("--max-pulses", 1), ("--tolerance", 2)):
        fails(capsys, ["export", "noise", "--device", EXAMPLE_MODEL, "-o", tmp_path / "n.json",
                       opt, value], EXIT_INPUT, opt)
    assert time.perf_counter() - t0 < 10
    assert nothing_in(tmp_path)


# --------------------------------------------------------------------------- crossbar
def test_crossbar_simulate_bad_inputs(tmp_path, capsys):
    g = np.full((4, 3), 1e-5)
    np.save(tmp_path / "g.npy", g)
    np.save(tmp_path / "v.npy", np.full(4, 0.1))
    np.savez(tmp_path / "g.npz", g=g)
    np.save(tmp_path / "huge.npy", np.full((4, 3), 1e7))
    args = ["--inputs", tmp_path / "v.npy", "--r-wire", 1, "-o", tmp_path / "i.npy"]
    fails(capsys, ["crossbar", "simulate", "--conductances", tmp_path / "g.npz", *args],
          EXIT_INPUT, ".npz archive")
    fails(capsys, ["crossbar", "simulate", "--conductances", tmp_path / "huge.npy", *args],
          EXIT_INPUT, "not plausible", "--accept-implausible")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "g.npy").read_bytes()[:100])
    fails(capsys, ["crossbar", "simulate", "--conductances", tmp_path / "cut.npy", *args],
          EXIT_INPUT, "cut.npy")
    fails(capsys, ["crossbar", "simulate", "--conductances", tmp_path / "g.npy", *args,
                   "--engine", "spectre"], EXIT_INPUT, "spectre")
    (tmp_path / "out").mkdir()
    fails(capsys, ["crossbar", "simulate", "--conductances", tmp_path / "g.npy", "--inputs",
                   tmp_path / "v.npy", "--r-wire", 1, "-o", tmp_path / "out"], EXIT_OUTPUT,
          "is a folder")
    fails(capsys, ["crossbar", "simulate", "--conductances", tmp_path / "g.npy", *args,
                   "--engine", "ngspice", "--max-cells", 4], EXIT_BUDGET, "size limit")
    assert not (tmp_path / "i.npy").exists()


def test_fast_solver_refuses_to_be_silently_wrong():
    from pyaimc.circuit import CrossbarSolver, one_r

    g = np.full((8, 8), 1e7)
    g[::2] = 1e-4
    sol = CrossbarSolver(one_r(g, 1.0)).solve(np.linspace(0.1, 0.2, 8))
    assert sol.method.startswith("direct (ill-conditioned")
    with pytest.raises(Exception, match="ill-conditioned"):
        CrossbarSolver(one_r(g, 1.0), method="lines")


# --------------------------------------------------------------------------- training
def test_train_bad_config_threads_and_checkpoint(tmp_path, capsys):
    (tmp_path / "list.json").write_text("[1, 2]")
    fails(capsys, ["train", "--config", tmp_path / "list.json", "-o", tmp_path / "run"],
          EXIT_INPUT, "list.json", "object")
    fails(capsys, ["train", "--preset", "tiny", "--threads", 0, "-o", tmp_path / "run"],
          EXIT_INPUT, "--threads")
    run = tmp_path / "run2"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    from pyaimc.experiments.config import preset, to_dict

    (run / "config.json").write_text(json.dumps({"schema": "pyaimc.train-config/1",
                                                 **to_dict(preset("tiny"))}))
    fails(capsys, ["deploy", run, "--noise", tmp_path / "none.json"], EXIT_INPUT,
          "checkpoint")


def test_training_that_diverges_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    cfg = {"preset": "tiny", "data": {"train_size": 64, "test_size": 32},
           "train": {"epochs": 3, "batch_size": 32, "lr": 1e30, "warmup_epochs": 0}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    fails(capsys, ["train", "--config", tmp_path / "c.json", "-o", tmp_path / "run", "--quiet"],
          EXIT_FAILED, "diverged", "last good checkpoint")
    ckpt = tmp_path / "run" / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        assert all(torch.isfinite(v).all() for v in state["model"].values()
                   if v.is_floating_point())
    assert not (tmp_path / "run" / "metrics.json").exists()


# --------------------------------------------------------------------------- signals
def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(x) for x in out.split()]


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        for c in _children(p):
            seen.append(c)
            todo.append(c)
    return seen


@pytest.mark.parametrize("argv, wait_for", [
    (["crossbar", "simulate", "--engine", "ngspice"], "ngspice"),
    (["crossbar", "transfer", "--device", str(EXAMPLE_MODEL), "--tile", "48x48",
      "--patterns", "16", "--workers", "2"], "python"),
])
def test_sigterm_ends_children_and_removes_temporary_files(tmp_path, argv, wait_for):
    if argv[1] == "simulate":
        from pyaimc.spice.ngspice import find_ngspice
        try:
            find_ngspice()
        except Exception:  # noqa: BLE001
            pytest.skip("ngspice is not installed")
        g = np.random.default_rng(0).uniform(1e-6, 1e-4, (96, 96))
        np.save(tmp_path / "g.npy", g)
        np.save(tmp_path / "v.npy", np.full((20, 96), 0.1))
        argv = argv + ["--conductances", str(tmp_path / "g.npy"), "--inputs",
                       str(tmp_path / "v.npy"), "--r-wire", "1", "-o", str(tmp_path / "i.npy")]
    else:
        argv = argv + ["-o", str(tmp_path / "t.json")]
    env = dict(os.environ, TMPDIR=str(tmp_path))
    if wait_for == "ngspice":
        # a child process to end: batch mode (the default runs ngspice's shared library in-process)
        env["PYAIMC_NGSPICE_TRANSPORT"] = "batch"
    proc = subprocess.Popen([sys.executable, "-m", "pyaimc", *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    kids = []
    while time.time() < deadline:
        kids = _tree(proc.pid)
        names = subprocess.run(["ps", "-o", "comm=", "-p", ",".join(map(str, kids))],
                               capture_output=True, text=True).stdout if kids else ""
        if wait_for in names:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"no {wait_for} child started within 60 s")
    time.sleep(0.5)
    kids = _tree(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    time.sleep(0.5)
    alive = [k for k in kids if subprocess.run(["ps", "-p", str(k)],
                                               capture_output=True).returncode == 0]
    assert not alive, f"children left running: {alive}"
    left = [p.name for p in tmp_path.iterdir() if p.name not in ("g.npy", "v.npy")]
    assert left == [], left


def test_temporary_files_of_killed_runs_are_cleaned(tmp_path):
    """kill -9 cannot be caught: a write's temporary file stays, named after its target and its
    process; the next write of that target removes it once that process is gone."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a process id that no longer runs
    stale = tmp_path / f".s.npz.pyaimc-{proc.pid}-abc123.tmp"
    stale.write_bytes(b"x" * 1000)
    mine = tmp_path / f".s.npz.pyaimc-{os.getpid()}-def456.tmp"  # a live process's: kept
    mine.write_bytes(b"y")
    assert main(["sample", str(EXAMPLE_MODEL), "--devices", "3", "--cycles", "4", "-o",
                 str(tmp_path / "s.npz")]) == 0
    assert not stale.exists() and mine.exists() and (tmp_path / "s.npz").exists()
