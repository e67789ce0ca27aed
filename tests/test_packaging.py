"""The package's shape: imports only downward through the design guide's layers, and a wheel
that carries what the commands need (Verilog-A sources, shipped models)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyaimc"

#: the layers of ../shared/DESIGN.md, lowest first; a module may import its own layer and those
#: below (compact and circuit share a layer and do not import each other)
LAYERS = [("errors",), ("io",), ("data",), ("device",), ("spice",), ("compact", "circuit"), ("noise",),
          ("analog",), ("s4d",), ("experiments",), ("apps",), ("cli",)]
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str | None:
    """The top-level part of ``pyaimc.<part>...`` (None for other modules)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "pyaimc" and len(parts) > 1 else None


def _imports(path: Path):
    """Every module ``path`` imports (at any depth of the file), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name, node.lineno
            for alias in node.names:  # "from pyaimc import cli" imports the submodule
                if name == "pyaimc":
                    yield f"pyaimc.{alias.name}", node.lineno


def test_every_package_module_has_a_layer():
    parts = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    parts -= {"__init__", "__main__"}
    assert parts <= set(RANK), f"modules without a layer in DESIGN.md: {parts - set(RANK)}"


def test_imports_only_go_downward():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT)
        own = rel.parts[1] if len(rel.parts) > 2 else Path(rel.parts[1]).stem
        if own in ("__init__", "__main__"):
            continue
        for name, line in _imports(path):
            if name.split(".")[0] in ("examples", "tools"):
                bad.append(f"{rel}:{line} imports {name} (outside the package)")
                continue
            part = _part(name)
            if part is None or part == own or part in ("__init__", "__version__"):
                continue
            if part not in RANK:
                continue
            if RANK[part] > RANK[own] or (RANK[part] == RANK[own] and part != own):
                bad.append(f"{rel}:{line} ({own}) imports {name} ({part}, a layer above or "
                           f"beside)")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_the_layering_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The check above can fail: an import of the CLI from the device level is reported."""
    fake = tmp_path / "pyaimc" / "device"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from pyaimc.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    imports = list(_imports(fake / "bad.py"))
    assert ("pyaimc.cli", 2) in imports
    assert RANK[_part("pyaimc.cli")] > RANK["device"]


@pytest.mark.skipif(os.environ.get("PYAIMC_SKIP_WHEEL") == "1", reason="PYAIMC_SKIP_WHEEL=1")
def test_wheel_carries_the_verilog_a_and_the_shipped_models(tmp_path):
    """Build the wheel, install it alone (no repository on the path) and run the command that
    copies the Verilog-A module: it must find its files inside the installed package."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, capture_output=True)
    wheel = next(dist.glob("pyaimc-*.whl"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    run = tmp_path / "run"
    run.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import pyaimc; print(pyaimc.__file__)"],
                           cwd=run, env=env, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    out = run / "va"
    res = subprocess.run([sys.executable, "-m", "pyaimc", "export", "veriloga", "example",
                          "-o", str(out), "--devices", "2", "--cycles", "3"],
                         cwd=run, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    module = (out / "pyaimc_reram.va").read_text()
    assert module == (ROOT / "pyaimc" / "veriloga" / "pyaimc_reram.va").read_text()
    installed = site / "pyaimc"
    assert {p.name for p in (installed / "models").glob("*.json")} >= {
        "example.json", "synaptogen_ref.json", "radar_cycling-4-24-20.json"}
    assert len(list((installed / "veriloga").glob("*.vams"))) >= 5
