"""A pytest plugin for the GPU check: each test's outcome appended, as it comes, to the JSON-lines
file named by ``GPU_CHECK_OUTCOMES`` (one line per test: ``nodeid``, ``outcome``, ``when``,
``seconds`` and, for a failure, the last line of its message). Under pytest-xdist only the
controller writes, once per test, what every worker reports. Loaded with
``-p benchmarks.outcome_log``."""

from __future__ import annotations

import json
import os

_WRITES = {"enabled": False}


def pytest_configure(config) -> None:
    # an xdist worker reports to the controller, which calls this plugin's hook again
    _WRITES["enabled"] = not hasattr(config, "workerinput")


def pytest_runtest_logreport(report) -> None:
    path = os.environ.get("GPU_CHECK_OUTCOMES")
    if not path or not _WRITES["enabled"]:
        return
    if report.when == "call":
        outcome = report.outcome  # passed, failed, skipped (an xfail counts as skipped)
    elif report.failed:
        outcome = "error"  # in a fixture's setup or teardown
    elif report.skipped and report.when == "setup":
        outcome = "skipped"
    else:
        return
    message = ""
    if report.failed:
        lines = [line for line in report.longreprtext.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("E ")]
        message = (errors[-1] if errors else lines[-1] if lines else "")[:300]
    line = {
        "nodeid": report.nodeid,
        "outcome": outcome,
        "when": report.when,
        "seconds": round(report.duration, 2),
        "message": message,
    }
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")
