"""The project's promises: one dependency list in two files, notebooks built from their sources and
executed top to bottom, and `make lab` serving JupyterLab on 127.0.0.1 behind a token."""

from __future__ import annotations

import functools
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
        # any local user can read a command line; the token must not be on one
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                assert token.encode() not in cmdline.read_bytes(), f"token visible in {cmdline}"
            except OSError:  # the process has ended
                continue
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


@pytest.mark.slow
def test_make_fresh_copies_writes_the_lessons_without_outputs_and_keeps_yours(tmp_path):
    venv = Path(sys.prefix)
    fresh = tmp_path / "fresh"

    def make_fresh_copies() -> str:
        # -o: the venv is set up already; never reinstall into it from a test
        run = subprocess.run(
            ["make", "--no-print-directory", "fresh-copies", f"VENV={venv}", f"FRESH={fresh}"]
            + ["-o", str(venv / ".tutorial_det-installed")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "MAKEFLAGS"},
        )
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    assert make_fresh_copies().count("wrote ") == len(NOTEBOOKS)
    for lesson in NOTEBOOKS:
        copy = nbformat.read(fresh / lesson.name, as_version=4)
        source = jupytext.read(ROOT / "notebooks" / "src" / f"{lesson.stem}.py")
        assert [c.source for c in copy.cells] == [c.source for c in source.cells]
        code = [c for c in copy.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), lesson.name
        assert copy.metadata["kernelspec"]["name"] == "python3"
    said = [c for c in nbformat.read(fresh / NOTEBOOKS[0].name, 4).cells if "say(" in c.source]
    assert said and all(c.metadata["jupyter"]["source_hidden"] for c in said)
    # a learner's copy is never overwritten
    mine = fresh / NOTEBOOKS[0].name
    mine.write_text(mine.read_text().replace("# 00 · Boxes and images", "# 00 · my notes"))
    again = make_fresh_copies()
    assert f"kept {mine}" in again and "wrote" not in again
    assert "# 00 · my notes" in mine.read_text()
    assert (fresh / "jupytext.toml").read_text().strip() == 'formats = "ipynb"'


def _references():
    """Each check of the lessons' "write your own" exercises, with the reference solution the
    README names for it (qualified name, and the callable that must pass the check)."""
    from tutorial_det import anchors, boxes, labelling, nms, roi, roi_pool, rpn, ssd
    from tutorial_det.exercises.backbones import receptive_field
    from tutorial_det.metrics import average_precision
    from tutorial_det.wpod.geometry import warp_unit_square

    return {
        "check_box_iou": ("tutorial_det.boxes.box_iou", boxes.box_iou),
        "check_receptive_field": (
            "tutorial_det.exercises.backbones.receptive_field",
            receptive_field,
        ),
        "check_anchor_base": ("tutorial_det.anchors.anchor_base", anchors.anchor_base),
        "check_grid_anchors": ("tutorial_det.anchors.grid_anchors", anchors.grid_anchors),
        "check_label_anchors": ("tutorial_det.labelling.label_anchors", labelling.label_anchors),
        "check_nms": ("tutorial_det.nms.nms", nms.nms),
        "check_to_anchor_order": ("tutorial_det.rpn.to_anchor_order", rpn.to_anchor_order),
        "check_roi_pool": ("tutorial_det.roi_pool.roi_pool", roi_pool.roi_pool),
        "check_proposal_targets": (
            "tutorial_det.roi.proposal_targets",
            functools.partial(roi.proposal_targets, batch_size_per_image=10_000),
        ),
        "check_rpn_loss": ("tutorial_det.rpn.rpn_loss", rpn.rpn_loss),
        "check_roi_head_loss": ("tutorial_det.roi.roi_head_loss", roi.roi_head_loss),
        "check_match_priors": ("tutorial_det.labelling.match_priors", labelling.match_priors),
        "check_hard_negative_mining": (
            "tutorial_det.ssd.hard_negative_mask",
            ssd.hard_negative_mask,
        ),
        "check_warp_unit_square": ("tutorial_det.wpod.geometry.warp_unit_square", warp_unit_square),
        "check_average_precision": ("tutorial_det.metrics.average_precision", average_precision),
    }


def test_readme_names_each_exercise_s_reference_solution_and_it_passes_its_check():
    from tutorial_det import exercises

    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ") and "check_" in line]
    asked = {c for src in (ROOT / "notebooks" / "src").glob("*.py") for c in
             re.findall(r"^(check_\w+)\(my_", src.read_text(), re.MULTILINE)}  # fmt: skip
    for check, (name, reference) in _references().items():
        row = next((row for row in rows if f"`{check}`" in row), None)
        assert row is not None, f"README's exercise table has no row for {check}"
        assert f"`{name}`" in row, f"README's row for {check} does not name {name}"
        result = getattr(exercises, check)(reference, verbose=False)
        assert result, f"{name} fails {check}: {result.report()}"
    missing = asked - set(_references())
    assert not missing, f"lessons ask for exercises the README's table does not list: {missing}"
