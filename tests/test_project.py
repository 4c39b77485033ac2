"""The project's promises: one dependency list in two files, notebooks built from their sources and
executed top to bottom, and `make lab` serving JupyterLab on 127.0.0.1 behind a token."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {
        _normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]
    }
    text = (ROOT / "environment.yml").read_text()
    pip_block = text.split("- pip:", 1)[1]
    listed = {
        _normalise(line.strip()[2:])
        for line in pip_block.splitlines()
        if line.strip().startswith("- ")
    }
    listed.discard("-e.")
    assert listed == wanted, (
        f"only in environment.yml: {sorted(listed - wanted)}; only in pyproject: {sorted(wanted - listed)}"
    )


def test_constraints_pin_the_tested_torch_pair():
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[]", r)[0].lower() for r in project["dependencies"]}
    assert names <= set(pins), f"unpinned dependencies: {sorted(names - set(pins))}"


def test_every_lesson_has_a_source_and_every_source_a_lesson():
    sources = {p.stem for p in (ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py")}
    assert sources == {p.stem for p in NOTEBOOKS}
    assert NOTEBOOKS, "no lessons found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_matches_its_source_and_was_executed_in_order(path):
    stored = nbformat.read(path, as_version=4)
    source = jupytext.read(ROOT / "notebooks" / "src" / f"{path.stem}.py")
    got = [(c.cell_type, c.source) for c in stored.cells]
    want = [(c.cell_type, c.source) for c in source.cells]
    assert got == want, (
        f"{path.name} differs from notebooks/src/{path.stem}.py: run `make notebooks`"
    )
    assert stored.metadata.get("kernelspec", {}).get("name"), f"{path.name} has no kernelspec"
    code = [c for c in stored.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name} not executed top to bottom: {counts}"
    )
    for i, cell in enumerate(code):
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", (
                f"{path.name} code cell {i + 1} stored an error"
            )


@pytest.mark.slow
def test_make_lab_serves_jupyterlab_on_localhost_with_a_token(tmp_path):
    token = "lab-test-token"
    env = dict(os.environ, TOKEN=token, PORT="0", JUPYTER_RUNTIME_DIR=str(tmp_path))
    env.pop("MAKEFLAGS", None)
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "lab", "LAB_ARGS=--no-browser"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        server = None
        deadline = time.monotonic() + 120
        while server is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
            files = list(tmp_path.glob("jpserver-*.json"))
            server = json.loads(files[0].read_text()) if files else None
            time.sleep(0.5)
        assert server is not None, "JupyterLab did not start within 120 s"
        assert server["hostname"] == "127.0.0.1" and server["token"] == token
        base = f"http://127.0.0.1:{server['port']}"
        with urllib.request.urlopen(f"{base}/api", timeout=10) as reply:
            assert "version" in json.loads(reply.read())
        request = urllib.request.Request(
            f"{base}/api/contents", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            names = {item["name"] for item in json.loads(reply.read())["content"]}
        assert {p.name for p in NOTEBOOKS} <= names, "JupyterLab is not serving notebooks/"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{base}/api/contents", timeout=10)
        assert denied.value.code == 403
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_nothing_hard_codes_cuda_and_every_torch_load_is_weights_only():
    for path in list((ROOT / "tutorial_det").rglob("*.py")) + list(
        (ROOT / "notebooks" / "src").glob("*.py")
    ):
        text = path.read_text()
        assert ".cuda()" not in text, f"{path} hard-codes .cuda()"
        for call in re.findall(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call, f"{path}: torch.load without weights_only=True"


def test_package_imports_without_jupyter_display():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tutorial_det, tutorial_det.boxes; print(tutorial_det.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", out.stdout)
