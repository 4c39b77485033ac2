"""The GPU check: the test suite, every lesson and a training comparison on one CUDA device,
written up as one report (``report.md`` and ``report.json`` in ``--out``).

    make gpu-check OUT=gpu-report                  # python3 -m benchmarks.gpu_check --out gpu-report
    python -m benchmarks.gpu_check --out /tmp/check --device cpu --quick   # every stage, small, CPU

Three stages, one after the other, each with its own time limit; a stage that fails or runs out
of time is reported as such and the next one still runs, and the report is written in any case:

1. **suite**: ``pytest tests`` (``-n 8`` with pytest-xdist), where every test taking the
   ``device`` fixture runs on the CPU and on CUDA; the browser test and the notebook-file tests
   (``SUITE_LEFT_OUT``: they need JupyterLab, jupytext, nbformat) are left out. Outcomes are logged as they come
   (``benchmarks/outcome_log.py``), so a suite stopped by its limit still reports what ran.
2. **lessons**: every ``notebooks/src/NN_*.py`` run cell by cell in IPython
   (``benchmarks/lesson_cells.py``), one process per lesson, all at once, with
   ``TUTORIAL_DET_DEVICE=<device>`` and ``MPLBACKEND=Agg``; each lesson's wall time, and each
   cell's outputs compared with the stored notebook (the CPU run): equal, close (numbers within
   one unit of their last printed digit or 0.1 %), different, ignored.
3. **training**: ``benchmarks/gpu_training.py``: our Faster R-CNN and SSD against torchvision's
   on the same backbones, a fixed number of steps with bfloat16 autocast (steps per second,
   mAP), host synchronisations per training step, the cost of deterministic kernels.

``--quick`` runs two test files, lessons 02 and 03 and a few training steps, with generous time
limits: the whole pipeline in a few minutes, for trying the check on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.lesson_cells import NUMBER_TOLERANCE, compare_lesson

ROOT = Path(__file__).resolve().parents[1]
# JupyterLab in a browser, and the notebook files (jupytext, nbformat): not on a bare GPU machine
SUITE_LEFT_OUT = ["tests/test_browser.py", "tests/test_project.py", "tests/test_prose.py"]
QUICK_TESTS = ["tests/test_runtime.py", "tests/test_roi_head.py"]
QUICK_LESSONS = ["02_anchors", "03_iou_and_labelling"]
STATUSES = ("equal", "close", "different", "ignored", "error")
#: A test id of the ``device`` fixture's CUDA variant: ``test_x[cuda]``, ``test_y[cuda-float16]``.
CUDA_VARIANT = re.compile(r"\[(?:[^\]]*-)?cuda(?:-[^\]]*)?\]$")


# --------------------------------------------------------------------------- running a stage


def run_limited(command: list[str], seconds: float, env: dict, log: Path) -> tuple[int, float]:
    """Run ``command`` (output to ``log``) for at most ``seconds``; on time, stop its whole
    process group. Returns (exit status, or None when stopped; wall seconds)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            status = process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            _stop(process)
            status = None
    return status, time.perf_counter() - start


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL what is left after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def base_env(device: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    env.pop("TUTORIAL_DET_DEVICE", None)
    return env


# --------------------------------------------------------------------------- 1. the suite


def suite_stage(args, out: Path) -> dict:
    log = out / "suite_outcomes.jsonl"
    log.unlink(missing_ok=True)
    env = base_env(args.device)
    env["GPU_CHECK_OUTCOMES"] = str(log)
    targets = QUICK_TESTS if args.quick else ["tests"]
    command = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider"]
    command.append("--continue-on-collection-errors")  # a module that cannot import is one error
    command += ["-p", "benchmarks.outcome_log"]
    command += [f"--ignore={path}" for path in SUITE_LEFT_OUT]
    if args.workers > 1 and _has_module("xdist"):
        command += ["-n", str(args.workers)]
    status, seconds = run_limited(command, args.suite_timeout, env, out / "suite.log")
    outcomes = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    counts = Counter(o["outcome"] for o in outcomes)
    on_cuda = [o for o in outcomes if CUDA_VARIANT.search(o["nodeid"])]
    return {
        "command": " ".join(command),
        "exit_status": status,
        "timed_out": status is None,
        "seconds": round(seconds, 1),
        "counts": dict(counts),
        "cuda_tests": dict(Counter(o["outcome"] for o in on_cuda)),
        "failures": [o for o in outcomes if o["outcome"] in ("failed", "error")],
        "passed": status == 0,
        "log_tail": _tail(out / "suite.log", 3000),
    }


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# --------------------------------------------------------------------------- 2. the lessons


def lessons_stage(args, out: Path) -> dict:
    folder = out / "lessons"
    folder.mkdir(exist_ok=True)
    sources = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
    if args.quick:
        sources = [s for s in sources if s.stem in QUICK_LESSONS]
    env = base_env(args.device)
    env["TUTORIAL_DET_DEVICE"] = args.device
    env.setdefault("OMP_NUM_THREADS", "2")  # a dozen lessons at once share the cores
    started = time.perf_counter()
    running = {}
    for source in sources:
        env["IPYTHONDIR"] = tempfile.mkdtemp(prefix=f"ipython-{source.stem}-")  # its own files
        log = open(folder / f"{source.stem}.log", "w")
        command = [sys.executable, "-m", "benchmarks.lesson_cells", str(source)]
        command.append(str(folder / f"{source.stem}.json"))
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        running[source.stem] = (process, log)
    ended = {}
    deadline = started + args.lessons_timeout
    while running:
        for stem, (process, log) in list(running.items()):
            if process.poll() is not None:
                ended[stem] = (process.returncode, time.perf_counter() - started)
                log.close()
                del running[stem]
        if running and time.perf_counter() > deadline:
            for stem, (process, log) in running.items():
                _stop(process)
                ended[stem] = (None, time.perf_counter() - started)
                log.close()
            running = {}
        time.sleep(0.2)
    lessons = {}
    for source in sources:
        status, seconds = ended[source.stem]
        lessons[source.stem] = _lesson_result(source, folder, status, seconds)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "device": args.device,
        "tolerance": NUMBER_TOLERANCE,
        "lessons": lessons,
        "passed": all(lesson["passed"] for lesson in lessons.values()),
    }


def _lesson_result(source: Path, folder: Path, status, seconds: float) -> dict:
    path = folder / f"{source.stem}.json"
    run = json.loads(path.read_text()) if path.exists() else {"cells": [], "finished": False}
    notebook = ROOT / "notebooks" / f"{source.stem}.ipynb"
    rows = compare_lesson(run, notebook) if notebook.exists() else []
    total = len(_code_cells(source))
    return {
        "exit_status": status,
        "timed_out": status is None,
        "seconds": round(seconds, 1),
        "cells_run": len(run["cells"]),
        "cells": total,
        "counts": dict(Counter(row["status"] for row in rows)),
        "rows": rows,
        "slowest_cells": sorted(
            ({"index": c["index"], "seconds": round(c["seconds"], 2)} for c in run["cells"]),
            key=lambda c: -c["seconds"],
        )[:3],
        "passed": status == 0 and not any(r["status"] in ("different", "error") for r in rows),
        "log_tail": _tail(folder / f"{source.stem}.log", 2000) if status != 0 else "",
    }


def _code_cells(source: Path) -> list[str]:
    from benchmarks.lesson_cells import code_cells

    return code_cells(source)


# --------------------------------------------------------------------------- 3. training


def training_stage(args, out: Path) -> dict:
    result_path = out / "training.json"
    command = [sys.executable, "-m", "benchmarks.gpu_training", "--device", args.device]
    command += ["--out", str(result_path), "--seeds", *map(str, args.seeds)]
    command += ["--budget", str(max(10.0, args.training_timeout - 35))]
    if args.quick:
        command.append("--quick")
    status, seconds = run_limited(
        command, args.training_timeout, base_env(args.device), out / "training.log"
    )
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    return {
        "command": " ".join(command),
        "exit_status": status,
        "timed_out": status is None,
        "seconds": round(seconds, 1),
        "result": result,
        "passed": status == 0,
        "log_tail": _tail(out / "training.log", 3000) if status != 0 else "",
    }


# --------------------------------------------------------------------------- the report


def _tail(path: Path, chars: int) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def machine() -> dict:
    info = {"python": platform.python_version(), "cores": os.cpu_count()}
    try:
        import torch
        import torchvision

        info.update(torch=torch.__version__, torchvision=torchvision.__version__)
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["bf16_native"] = torch.cuda.is_bf16_supported(including_emulation=False)
    except Exception as error:  # noqa: BLE001
        info["torch_error"] = repr(error)
    return info


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# GPU check",
        "",
        f"{m.get('gpu', 'no GPU')}, {m['cores']} cores; Python {m['python']}, torch "
        f"{m.get('torch')} (CUDA {m.get('cuda')}), torchvision {m.get('torchvision')}; "
        f"device `{report['device']}`{' (quick mode)' if report['quick'] else ''}; "
        f"total {report['seconds']:.0f} s.",
        "",
    ]
    if "error" in report:
        lines += [f"**{report['error']}**", ""]
    stages = {}
    for name, stage in report["stages"].items():
        if "error" in stage:
            lines += [f"## {name}: FAILED to run: `{stage['error']}`", ""]
        else:
            stages[name] = stage
    if "suite" in stages:
        s = stages["suite"]
        verdict = "passed" if s["passed"] else ("TIMED OUT" if s["timed_out"] else "FAILED")
        lines += [
            f"## 1. Test suite: {verdict} ({s['seconds']:.0f} s)",
            "",
            f"Outcomes: {_counts(s['counts'])}; of them on CUDA: {_counts(s['cuda_tests'])}.",
            f"`{s['command']}`",
            "",
        ]
        for failure in s["failures"][:30]:
            lines += [f"- **{failure['nodeid']}** ({failure['when']}): {failure['message']}"]
        if not s["passed"] and not s["failures"]:
            lines += ["```", s["log_tail"][-1500:], "```"]
        lines.append("")
    if "lessons" in stages:
        ls = stages["lessons"]
        verdict = "passed" if ls["passed"] else "FAILED"
        lines += [
            f"## 2. Lessons on `{ls['device']}`: {verdict} ({ls['seconds']:.0f} s, all at once)",
            "",
            f"Each cell's text outputs against the stored notebook (the CPU run); close = "
            f"{ls['tolerance']}.",
            "",
            "| lesson | time (s) | cells run | " + " | ".join(STATUSES) + " |",
            "|---|---|---|" + "---|" * len(STATUSES),
        ]
        for stem, lesson in ls["lessons"].items():
            state = " (timed out)" if lesson["timed_out"] else ""
            lines.append(
                f"| {stem} | {lesson['seconds']:.1f}{state} | {lesson['cells_run']} / "
                f"{lesson['cells']} | "
                + " | ".join(str(lesson["counts"].get(k, 0)) for k in STATUSES)
                + " |"
            )
        lines.append("")
        for stem, lesson in ls["lessons"].items():
            for row in lesson["rows"]:
                if row["status"] in ("close", "different", "error"):
                    lines.append(
                        f"- {stem} cell {row['index']} (`{row['first_line']}`): **{row['status']}**"
                        + (f": {row['reason']}" if row["status"] == "error" else "")
                    )
                    if row["status"] != "error":
                        lines += [
                            "  - this run: `" + _short(row["ours"]) + "`",
                            "  - stored (CPU): `" + _short(row["stored"]) + "`",
                        ]
            if lesson["log_tail"] and not any(r["status"] == "error" for r in lesson["rows"]):
                lines += [f"- {stem} log:", "```", lesson["log_tail"][-800:], "```"]
        lines.append("")
    if "training" in stages:
        lines += _training_markdown(stages["training"])
    return "\n".join(lines) + "\n"


def _training_markdown(t: dict) -> list[str]:
    verdict = "done" if t["passed"] else ("TIMED OUT" if t["timed_out"] else "FAILED")
    r = t["result"]
    lines = [f"## 3. Training: {verdict} ({t['seconds']:.0f} s)", ""]
    if r:
        lines += [
            f"Fixed steps {r['steps']}, amp {r['amp']}, seeds {r['seeds']}, mAP on "
            f"{r['val_size']} held-out images, {r['workers']} DataLoader workers.",
            "",
            "| pair | model | seed | steps | steps / s | mAP@0.5 | mAP |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in r.get("pairs", []):
            if "error" in row:
                lines.append(
                    f"| {row['family']} | {row['model']} | {row['seed']} | error | | | | |"
                )
                continue
            capped = " (time cap)" if row["capped"] else ""
            lines.append(
                f"| {row['family']} | {row['model']} | {row['seed']} | {row['steps']}{capped} | "
                f"{_number(row['steps_per_s'], 1)} | {row['map_50']:.3f} | {row['map']:.3f} |"
            )
        for row in r.get("pairs", []):
            if "error" in row:
                lines += ["```", row["error"][-1200:], "```"]
        if "host_syncs" in r:
            lines += ["", "Host synchronisations in one training step (8 images):", ""]
            for name, counts in r["host_syncs"].items():
                places = ", ".join(
                    f"{k} x{v}" for k, v in counts.items() if k not in ("images", "total")
                )
                lines.append(f"- {name}: {counts['total']} ({places})")
        if "determinism" in r:
            lines += ["", "Deterministic kernels (`fit(deterministic=True)`):", ""]
            for family, row in r["determinism"].items():
                if "error" in row:
                    lines.append(f"- {family}: error: `{row['error'].strip().splitlines()[-1]}`")
                    continue
                lines.append(
                    f"- {family}: {_number(row['steps_per_s'], 1)} steps/s, deterministic "
                    f"{_number(row['deterministic_steps_per_s'], 1)}; two deterministic runs bit "
                    f"for bit equal: {row['bit_identical']}"
                )
    elif t["log_tail"]:
        lines += ["```", t["log_tail"][-1500:], "```"]
    return lines + [""]


def _number(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _counts(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"


def _short(texts: list[str], limit: int = 300) -> str:
    joined = " / ".join(t.strip().replace("\n", " | ") for t in texts)
    return (joined[:limit] + " ...") if len(joined) > limit else joined


def write_report(report: dict, out: Path) -> None:
    """report.json, then report.md (should the Markdown fail, it says why and points to the JSON)."""
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    try:
        text = markdown(report)
    except Exception as error:  # noqa: BLE001
        text = f"# GPU check\n\nThe Markdown report failed ({error!r}): see report.json.\n"
    (out / "report.md").write_text(text)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the report")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="small versions of every stage")
    parser.add_argument("--stages", nargs="+", default=["suite", "lessons", "training"])
    parser.add_argument("--workers", type=int, default=8, help="pytest-xdist workers")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--suite-timeout", type=float, help="seconds (default 130; quick: 900)")
    parser.add_argument("--lessons-timeout", type=float, help="seconds (default 115; quick: 900)")
    parser.add_argument("--training-timeout", type=float, help="seconds (default 95; quick: 900)")
    args = parser.parse_args(argv)
    # one H200 against a small, maybe busy, CPU
    for name, limit in (("suite", 130.0), ("lessons", 115.0), ("training", 95.0)):
        if getattr(args, f"{name}_timeout") is None:
            setattr(args, f"{name}_timeout", 900.0 if args.quick else limit)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = {
        "device": args.device,
        "quick": args.quick,
        "machine": machine(),
        "stages": {},
        "seconds": 0.0,
    }
    if args.device.startswith("cuda") and "gpu" not in report["machine"]:
        report["error"] = "no CUDA device here: run with --device cpu (and --quick) instead"
        write_report(report, args.out)
        print(f"error: {report['error']}", file=sys.stderr)
        return 2
    stages = {"suite": suite_stage, "lessons": lessons_stage, "training": training_stage}
    for name in args.stages:
        print(f"gpu-check: {name} ...", file=sys.stderr, flush=True)
        try:
            report["stages"][name] = stages[name](args, args.out)
        except Exception as error:  # noqa: BLE001  (the report is written whatever happens)
            report["stages"][name] = {"passed": False, "timed_out": False, "error": repr(error)}
        report["seconds"] = time.perf_counter() - start
        write_report(report, args.out)
    print((args.out / "report.md").read_text())
    return 0 if all(stage.get("passed") for stage in report["stages"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
