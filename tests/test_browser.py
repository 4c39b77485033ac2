"""The lessons' explorers in a real browser: JupyterLab runs a lesson top to bottom, headless
Chromium (driven by Playwright) changes an explorer's controls the way a learner does, and after
each change the explorer's sentence of numbers must show the expected values and its picture must
change. Run them alone with ``pytest -m browser``.

The server serves a temporary copy of the lessons, so nothing here (autosave included) touches
``notebooks/``. Screenshots of each explorer before and after the change go to the folder named by
``$EXPLORER_SCREENSHOTS``, else to the test's ``tmp_path``.

Needs Debian's Chromium at ``/usr/bin/chromium`` and the ``playwright`` package (no downloaded
browser); without either the tests are skipped, saying how to install what is missing.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Chromium not found at {CHROMIUM}: apt-get install chromium (Debian's package)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the playwright package is missing: pip install -e '.[test]' (or pip install playwright)",
)

#: Seconds allowed for each step; generous because the lessons share the CPU with other work.
SERVER_START_S = 120
OPEN_S = 120
RUN_ALL_S = 600
CONTROL_S = 60

#: prctl option: the signal a process receives when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1

#: JupyterLab user settings for the test profile: no news question, no update check, no autosave,
#: and every cell attached to the page (so a cell far down is in the DOM without scrolling).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


@dataclass(frozen=True)
class Change:
    """Set the control described ``label`` to ``value`` (typed into a slider's readout or a text
    box; a bool ticks or unticks a checkbox); the explorer's sentence must then match ``expect``
    (a regular expression, searched)."""

    label: str
    value: str | bool
    expect: str


@dataclass(frozen=True)
class Case:
    """An explorer in a lesson: the code cell that displays it starts with ``cell``; its sentence
    first matches ``start``, then each change in turn."""

    name: str
    notebook: str
    cell: str
    start: str
    changes: tuple[Change, ...]


CASES = (
    Case(
        name="anchors",
        notebook="02_anchors.ipynb",
        cell="explorer = AnchorExplorer(",
        start=r"^22500 anchors \(50 x 50 cells x 9 per cell\), 8940 inside the image\. "
        r"Cell \(row 14, column 22\) is centred at \(360, 232\): 6 of its 9 anchors lie inside\.",
        changes=(
            # stride 32 keeps the cell over the same point: (232 // 32, 360 // 32) = (7, 11)
            Change(
                "stride",
                "32",
                r"^5625 anchors \(25 x 25 cells x 9 per cell\), 942 inside the image\. "
                r"Cell \(row 7, column 11\) is centred at \(368, 240\)",
            ),
            Change("ratios (h / w)", "1", r"^1875 anchors \(25 x 25 cells x 3 per cell\)"),
        ),
    ),
    Case(
        name="iou",
        notebook="03_iou_and_labelling.ipynb",
        cell="iou_explorer = IoUExplorer(",
        start=r"^IoU = 2500 / 17500 = 0\.143\.",
        changes=(
            # B moves from (70, 70, 170, 170) to (20, 70, 120, 170): overlap 100 x 50
            Change(
                "B left",
                "20",
                r"^IoU = 5000 / 15000 = 0\.333\. Intersection 100 x 50 = 5000; "
                r"union 10000 \+ 10000 - 5000 = 15000\.",
            ),
        ),
    ),
    Case(
        name="labelling",
        notebook="03_iou_and_labelling.ipynb",
        cell="labelling = LabellingExplorer(",
        start=r"^8940 of 22500 anchors lie inside the image \(the other 13560 are ignored\)\. "
        r"Labelled: 18 positive, 7690 negative, 1232 ignored\. "
        r"Sampled \(batch 256\): 18 positive, 238 negative, 8684 ignored\.",
        changes=(
            Change(
                "positive: IoU >=",
                "0.6",
                r"Labelled: 31 positive, 7690 negative, 1219 ignored\. "
                r"Sampled \(batch 256\): 31 positive, 225 negative, 8684 ignored\.",
            ),
            Change(
                "sample a mini-batch",
                False,
                r"Labelled: 31 positive, 7690 negative, 1219 ignored\. No sampling: every "
                r"labelled anchor counts in the loss\.",
            ),
        ),
    ),
)

#: A lesson whose prose quotes computed numbers through `say` cells stored collapsed.
SENTENCES = "00_boxes_and_images.ipynb"

# The notebook panel showing `path`, found among the main area's widgets (JavaScript).
FIND_PANEL = """(path) => {
    const app = window.jupyterapp;
    if (!app) return null;
    for (const w of app.shell.widgets('main')) {
        if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
    }
    return null;
}"""

# The kernel is started and idle and the cells are built.
PANEL_READY = f"""(path) => {{
    const panel = ({FIND_PANEL})(path);
    const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return !!(kernel && kernel.status === 'idle' && panel.content.widgets.length > 0
              && panel.context.isReady);
}}"""

# Clear the stored outputs, so every widget view found later comes from this run, then run all
# cells; the result of the command lands in window.__runAll.
RUN_ALL = f"""async (path) => {{
    const app = window.jupyterapp;
    const panel = ({FIND_PANEL})(path);
    app.shell.activateById(panel.id);
    await app.commands.execute('notebook:clear-all-cell-outputs');
    window.__runAll = undefined;
    app.commands.execute('notebook:run-all-cells').then(
        (ok) => {{ window.__runAll = ok === false ? 'stopped' : 'done'; }},
        (err) => {{ window.__runAll = 'failed: ' + err; }},
    );
}}"""

# Where the run stands: cells executed so far, the first error output, the kernel's status.
RUN_STATE = f"""(path) => {{
    const panel = ({FIND_PANEL})(path);
    let code = 0, executed = 0, error = null;
    panel.content.widgets.forEach((cell, index) => {{
        if (cell.model.type !== 'code' || !cell.model.sharedModel.getSource().trim()) return;
        code += 1;
        if (cell.model.executionCount !== null) executed += 1;
        for (const out of cell.model.outputs.toJSON()) {{
            if (out.output_type === 'error' && error === null) {{
                error = `cell ${{index}}: ${{out.ename}}: ${{out.evalue}}`;
            }}
        }}
    }});
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return {{run: window.__runAll ?? null, code, executed, error,
             kernel: kernel ? kernel.status : 'none'}};
}}"""

# Tag the code cell whose source starts with `prefix` (data-explorer=`name`); its index or -1.
TAG_CELL = f"""([path, prefix, name]) => {{
    const panel = ({FIND_PANEL})(path);
    const index = panel.content.widgets.findIndex(
        (cell) => cell.model.type === 'code' && cell.model.sharedModel.getSource().startsWith(prefix));
    if (index >= 0) panel.content.widgets[index].node.setAttribute('data-explorer', name);
    return index;
}}"""

# Every code cell that shows sentences: whether JupyterLab hides its code, the text of its rendered
# Markdown output, and whether its code editor is visible.
SAID_CELLS = f"""(path) => {{
    const panel = ({FIND_PANEL})(path);
    return panel.content.widgets
        .filter((cell) => cell.model.type === 'code'
                && cell.model.sharedModel.getSource().startsWith('say('))
        .map((cell) => {{
            const editor = cell.node.querySelector('.jp-InputArea-editor');
            const markdown = cell.node.querySelector('.jp-OutputArea-output.jp-RenderedMarkdown');
            return {{hidden: cell.inputHidden,
                     editorShown: !!(editor && editor.offsetParent !== null),
                     text: markdown ? markdown.innerText : null}};
        }});
}}"""

# SHA-256 of the PNG an <img> shows (ipywidgets gives it a blob: URL of the kernel's bytes).
IMAGE_DIGEST = """async (img) => {
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return [img.src, Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('')];
}"""


def _request(url: str, token: str, method: str = "GET") -> bytes:
    request = urllib.request.Request(
        url, method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.read()


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (the server's kernels name its runtime
    folder in their connection-file argument)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(entry.name))
    return pids


def _stop_with_parent() -> None:
    """In the server's process, before it starts: on Linux, have the kernel send it SIGTERM (a
    clean shutdown, kernels included) if pytest dies without running its finalisers."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop_server(proc: subprocess.Popen, base: str | None, token: str, runtime: Path) -> None:
    """Shut the server down (kernels first, through its API), then its process group; kernels
    run in their own sessions, so any left behind are found by their connection files."""
    if base is not None and proc.poll() is None:
        try:
            _request(f"{base}/api/shutdown", token, method="POST")
        except (urllib.error.URLError, OSError):
            pass
    for sig, wait_s in ((None, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        if sig is not None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in _pids_mentioning(str(runtime)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class Lab:
    url: str
    token: str


def _shut_down_kernels(lab: Lab) -> None:
    """End every session of the server, so a finished lesson's kernel frees the CPU."""
    try:
        for session in json.loads(_request(f"{lab.url}/api/sessions", lab.token)):
            _request(f"{lab.url}/api/sessions/{session['id']}", lab.token, method="DELETE")
    except (urllib.error.URLError, OSError) as error:
        print(f"could not shut the kernels down: {error}")  # the server's shutdown does it


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 (free port, random token) serving a copy of the tested lessons."""
    home = tmp_path_factory.mktemp("lab")
    root, runtime, settings = home / "notebooks", home / "runtime", home / "settings"
    root.mkdir()
    for name in sorted({case.notebook for case in CASES} | {SENTENCES}):
        shutil.copy(ROOT / "notebooks" / name, root / name)
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token = secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        "--port=0",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        f"--ServerApp.root_dir={root}",
    ]
    if os.geteuid() == 0:
        args.append("--allow-root")
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
    base = None
    try:
        deadline = time.monotonic() + SERVER_START_S
        while base is None:
            if proc.poll() is not None:
                pytest.fail(
                    f"JupyterLab exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start within {SERVER_START_S} s: see {log_path}")
            files = list(runtime.glob("jpserver-*.json")) if runtime.exists() else []
            if files:
                try:
                    info = json.loads(files[0].read_text())
                    base = f"http://127.0.0.1:{info['port']}"
                    _request(f"{base}/api/status", token)
                except (ValueError, KeyError, urllib.error.URLError, OSError):
                    base = None
            time.sleep(0.25)
        yield Lab(url=base, token=token)
    finally:
        _stop_server(proc, base, token, runtime)


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("EXPLORER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _dismiss_notifications(page) -> None:
    """Close any toast (such as the news question) that could cover a control."""
    for toast in page.locator(".Toastify__toast").all():
        no = toast.get_by_role("button", name="No")
        close = no if no.count() else toast.locator(".Toastify__close-button")
        try:
            close.first.click(timeout=5000)
        except sync_api.Error:
            pass  # gone on its own


def _run_lesson(page, lab: Lab, notebook: str) -> None:
    """Open ``notebook``, wait for its kernel, run every cell, wait until all ran and the kernel
    is idle; fail at the first error output, naming the cell."""
    page.goto(f"{lab.url}/lab/tree/{notebook}?token={lab.token}")
    page.wait_for_function(PANEL_READY, arg=notebook, timeout=OPEN_S * 1000, polling=250)
    _dismiss_notifications(page)
    page.evaluate(RUN_ALL, notebook)
    deadline = time.monotonic() + RUN_ALL_S
    state = page.evaluate(RUN_STATE, notebook)
    while not (state["run"] is not None and state["kernel"] == "idle"):
        assert state["error"] is None, f"{notebook} {state['error']}"
        assert time.monotonic() < deadline, (
            f"{notebook}: {state['executed']} of {state['code']} cells ran in {RUN_ALL_S} s "
            f"(kernel {state['kernel']})"
        )
        page.wait_for_timeout(500)
        state = page.evaluate(RUN_STATE, notebook)
    assert state["error"] is None, f"{notebook} {state['error']}"
    assert state["run"] == "done", f"{notebook}: run all cells {state['run']}"
    assert state["executed"] == state["code"], f"{notebook}: {state}"


def _picture(img) -> tuple[str, str]:
    """Wait for the explorer's <img> to finish loading; its (src, SHA-256 of its PNG)."""
    img.wait_for(state="visible")
    img.page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle()
    )
    src, digest = img.evaluate(IMAGE_DIGEST)
    return src, digest


def _screenshot(page, explorer, path: Path) -> None:
    """The explorer as a learner sees it, with no control focused."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    explorer.screenshot(path=path)


def _set_control(page, explorer, label: str, value: str | bool) -> None:
    """Set the control described ``label`` to ``value`` as a learner does: click a slider's
    readout, select all, type, Enter; type into a text box, Enter; click a checkbox."""
    if isinstance(value, bool):
        box = explorer.get_by_role("checkbox", name=label, exact=True)
        assert box.count() == 1, f"{box.count()} checkboxes described {label!r}"
        box.set_checked(value)
        return
    description = page.locator("label.widget-label", has_text=re.compile(f"^{re.escape(label)}$"))
    control = explorer.locator(".widget-slider, .widget-text").filter(has=description)
    assert control.count() == 1, f"{control.count()} controls described {label!r}"
    readout = control.locator(".widget-readout")
    if readout.count():
        readout.click()
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.type(value)
        page.keyboard.press("Enter")
    else:
        box = control.locator("input")
        box.fill(value)
        box.press("Enter")


class Lessons:
    """Lessons run in the browser, one at a time: asking for another lesson closes the previous
    one's page and shuts its kernel down, so the explorers of one lesson share one run."""

    def __init__(self, lab: Lab, browser) -> None:
        self.lab, self.browser = lab, browser
        self.notebook: str | None = None
        self.context = None
        self.page = None
        self.failure: str | None = None

    def open(self, notebook: str):
        """The page of ``notebook`` with every cell run (fails as its run failed)."""
        if notebook != self.notebook:
            self.close()
            self.notebook = notebook
            self.context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
            self.context.set_default_timeout(CONTROL_S * 1000)
            self.page = self.context.new_page()
            try:
                _run_lesson(self.page, self.lab, notebook)
            except BaseException as error:
                self.failure = str(error).splitlines()[0] if str(error) else repr(error)
                raise
        if self.failure is not None:
            pytest.fail(f"{notebook} did not run: {self.failure}")
        return self.page

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
            _shut_down_kernels(self.lab)
        self.notebook = self.context = self.page = self.failure = None


@pytest.fixture(scope="module")
def lessons(lab: Lab, browser) -> Iterator[Lessons]:
    opened = Lessons(lab, browser)
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_explorer_responds_in_jupyterlab(case: Case, lessons: Lessons, screenshots: Path):
    page = lessons.open(case.notebook)
    index = page.evaluate(TAG_CELL, [case.notebook, case.cell, case.name])
    assert index >= 0, f"no code cell of {case.notebook} starts with {case.cell!r}"
    cell = page.locator(f'[data-explorer="{case.name}"]')
    explorer = cell.locator(".jp-OutputArea-output .widget-vbox").first
    summary = explorer.locator(".widget-html-content").first
    img = explorer.locator("img.widget-image")
    explorer.scroll_into_view_if_needed()
    sync_api.expect(summary, f"{case.name}: the explorer's first sentence").to_have_text(
        re.compile(case.start), timeout=CONTROL_S * 1000
    )
    _dismiss_notifications(page)
    picture = _picture(img)
    _screenshot(page, explorer, screenshots / f"explorer_{case.name}_before.png")
    for step, change in enumerate(case.changes, start=1):
        text = summary.inner_text()
        _set_control(page, explorer, change.label, change.value)
        after = f"{case.name}: the sentence after {change.label} = {change.value}"
        sync_api.expect(summary, after).not_to_have_text(text, timeout=CONTROL_S * 1000)
        sync_api.expect(summary, after).to_have_text(
            re.compile(change.expect), timeout=CONTROL_S * 1000
        )
        page.wait_for_function(
            "([img, src]) => img.src !== src", arg=[img.element_handle(), picture[0]]
        )
        before, picture = picture, _picture(img)
        assert picture[1] != before[1], (
            f"{case.name}: the picture did not change after {change.label} = {change.value}"
        )
        _screenshot(page, explorer, screenshots / f"explorer_{case.name}_after{step}.png")


def test_sentences_show_as_markdown_under_collapsed_code(lab: Lab, browser, screenshots: Path):
    """JupyterLab honours the stored `source_hidden`: a `say` cell shows only its sentence."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(f"{lab.url}/lab/tree/{SENTENCES}?token={lab.token}")
        page.wait_for_function(PANEL_READY, arg=SENTENCES, timeout=OPEN_S * 1000, polling=250)
        said = page.evaluate(SAID_CELLS, SENTENCES)
        assert said, f"{SENTENCES} has no say( cells"
        for cell in said:
            assert cell["hidden"] and not cell["editorShown"], cell
            assert cell["text"] and "{" not in cell["text"], cell
        assert said[0]["text"].startswith('There is no "+1"'), said[0]
        page.evaluate(TAG_CELL, [SENTENCES, "say(", "sentence"])
        cell = page.locator('[data-explorer="sentence"]')
        cell.scroll_into_view_if_needed()
        page.screenshot(path=screenshots / "sentences.png")
    finally:
        context.close()
        _shut_down_kernels(lab)
