"""The command line: train, evaluate and run a registered detector without writing Python.

::

    tutorial-det train --model ssd --data shapes --epochs 10 --out runs/ssd
    tutorial-det train --model ssd --data shapes --epochs 10 --out runs/ssd --resume
    tutorial-det train --model ssd --data voc:my_voc --classes cat,dog --resize 128 --epochs 30 --out runs/pets
    torchrun --nproc_per_node=2 -m tutorial_det train --model ssd --data shapes --epochs 10 --out runs/ssd2
    tutorial-det evaluate --checkpoint runs/ssd/model.pt --data shapes --json runs/ssd/eval.json
    tutorial-det detect photo.jpg --checkpoint runs/ssd/model.pt --out runs/ssd/detections

(``python -m tutorial_det ...`` is the same as ``tutorial-det ...``.) ``tutorial-det train --help``
describes the data layouts, the resize options and what ``train`` writes into ``--out``
(:data:`TRAIN_EPILOG`).

``--data`` names the data: ``shapes`` or ``plates`` (the synthetic sets, generated on the fly),
``voc:DIR`` (a Pascal VOC folder) or ``coco:PATH`` (a COCO annotation file, or a folder holding
``annotations.json``). The number of classes comes from the data. A folder's files are checked
before anything is trained: every annotation parsed, every image's header read.

``--resume`` continues exactly where the checkpoint left off; it refuses other settings (the data
folder is compared as a resolved path) and says so when the run has already finished. Under
``torchrun`` every process trains (see :mod:`tutorial_det.training.distributed`) and rank 0 alone
writes.

Synthetic images are a pure function of ``(seed, index)``: ``train`` draws its images with
``--seed``, and ``evaluate`` draws held-out images with ``--split-seed`` (default: the training
seed + 1). A folder is evaluated whole: point ``--data`` at the held-out folder.

Every failure a user can cause (a bad argument, a faulty file, a run folder that does not fit)
ends with exit status 2 and one ``error:`` line that names the argument or file and says what to
do; ``--debug`` shows the traceback instead. Lesson 11 (your own data) runs these commands.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch.utils.data import Dataset, Subset
from torchvision.transforms import v2

from tutorial_det.data import (
    VOC_CLASSES,
    CocoDataset,
    PlatesDataset,
    SamplePoolError,
    ShapesDataset,
    VOCDataset,
    read_image,
)
from tutorial_det.data.readers import DetectionFiles, ImagesChecked, image_size
from tutorial_det.metrics import mean_average_precision
from tutorial_det.model_file import (
    MODEL_FILE_FORMAT,
    ModelSpec,
    check_weights_fit,
    load_model_file,
    save_model_file,
)
from tutorial_det.models import LEARNS_CORNERS, MODELS
from tutorial_det.resize import RESIZE_MODES, Resize
from tutorial_det.runtime import pick_device, seed_everything
from tutorial_det.training import (
    CHECKPOINT_NAME,
    NonFiniteLossError,
    evaluate,
    fit,
    freeze,
    load_checkpoint,
    load_partial_state_dict,
    param_groups,
)
from tutorial_det.training.checkpoint import CHECKPOINT_FORMAT, remove_temporary_files
from tutorial_det.viz import draw_boxes, show_image

PROG = "tutorial-det"
RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
MODEL_FILE = "model.pt"
#: Every file ``train`` writes into ``--out``.
RUN_FILES = (RUN_FILE, CHECKPOINT_NAME, HISTORY_FILE, MODEL_FILE)
DATA_CHOICES = "shapes, plates, voc:DIR, coco:FILE.json or coco:DIR"
SYNTHETIC = {"shapes": ShapesDataset, "plates": PlatesDataset}
DEFAULT_TRAIN_SIZE = 2000
DEFAULT_IMAGE_SIZE = 128
#: run.json entries that may change when a run is resumed (they only move the end of training).
RESUMABLE_CHANGES = ("epochs", "max_steps", "log_every", "checkpoint_every", "device", "workers")

#: Exit statuses: done; an unexpected failure (a fault of the program); a problem with the
#: arguments or files, which the error line explains; interrupted with Ctrl-C.
EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A failure the user can fix (an argument, a file, a run folder); the message says how."""


#: Exceptions that report a problem with the user's arguments or files (exit status 2).
USER_ERRORS = (CommandError, ValueError, OSError, NonFiniteLossError, SamplePoolError)

DATA_LAYOUTS = """\
data (--data):
  shapes, plates   synthetic images drawn from --seed (--train-size images of --image-size px)
  voc:DIR          a Pascal VOC folder:
                     DIR/Annotations/NAME.xml  one file per image (the suffix in any case)
                     DIR/JPEGImages/FILE       the image that <filename> names (any format
                                               Pillow reads: JPEG, PNG, 8- or 16-bit)
                   each XML holds <filename>, <size> <width> <height>, and per object <name>,
                   <bndbox> <xmin> <ymin> <xmax> <ymax> (1-based pixels, inclusive) and
                   optionally <difficult>1</difficult> (ignored by evaluation); --classes a,b,c
                   names the classes (labels 1, 2, 3; default: the 20 Pascal VOC classes for
                   train, the model file's classes for evaluate)
  coco:FILE.json   a COCO annotation file: "images" (id, file_name, width, height),
                   "annotations" (id, image_id, category_id, bbox [x, y, width, height] in
                   pixels, iscrowd 0 or 1) and "categories" (id, name); file_name is relative
                   to the file's folder; categories become labels 1..C in ascending id order
  coco:DIR         the same with DIR/annotations.json
Before anything is trained or evaluated, every annotation is parsed and every image's header
read (format, pixel count, size against the annotation); a count is printed.
"""

TRAIN_EPILOG = f"""\
{DATA_LAYOUTS}
images of mixed sizes:
  --resize N brings every image to N x N pixels: "letterbox" (default) scales it so that its
  longer side is N, keeping its shape, and pads it with black at the bottom and right;
  --resize-mode stretch scales each side to N. Boxes move with the pixels, and evaluate and
  detect resize the same way and map the detections back to each image's own pixels. Without
  it, a batch is padded to its largest image: SSD then lays its priors on that padded size, so
  an object's size relative to the priors depends on the other images of its batch, and the
  default ssd, faster_rcnn and wpod are made for objects of about 12 to 80 px. For a folder of
  mixed sizes or of large photos, --resize 128 is the place to start (torchvision_frcnn
  resizes to 320 px itself). wpod learns four corners per object: on a folder, each box's
  corners stand for them.

what train writes into --out:
  run.json      the run's settings, written first; --resume checks them
  last.pt       the checkpoint to resume from: weights, optimizer, schedule, step, random
                states; written every --checkpoint-every steps, at the end, and when
                training stops on an error or Ctrl-C
  history.json  every step's loss terms and learning rate
  model.pt      the model file that evaluate and detect read: model name, classes, options,
                --resize, weights

--option KEY=VALUE passes KEY to the model's class (ssd: tutorial_det.ssd.SSD, faster_rcnn:
  tutorial_det.faster_rcnn.FasterRCNN, wpod: tutorial_det.wpod.WPODDetector, torchvision_frcnn:
  torchvision's FasterRCNN); VALUE is a Python literal (64, 0.5, [1, 2], True) or else a
  string, e.g. --option score_thresh=0.3. An unknown KEY is refused with the list of the
  model's options.

exit status: 0 done; 2 a problem with the arguments or files (the error line says what to
change); 1 an unexpected failure (--debug shows where); 130 interrupted (Ctrl-C).
"""

EVALUATE_EPILOG = f"""\
{DATA_LAYOUTS}
The model file's --resize (if any) applies: images are resized as in training and the
detections mapped back, so the metrics refer to the images as they are on disk.

exit status: 0 done; 2 a problem with the arguments or files; 1 an unexpected failure.
"""

DETECT_EPILOG = """\
For each IMAGE, --out receives IMAGE's name as a PNG with the detections scoring at least
--score-thresh drawn on it (plates also as rectified crops, NAME_plateK.png), and the
detections are printed. The model file's --resize (if any) applies.

exit status: 0 done; 2 a problem with the arguments or files; 1 an unexpected failure.
"""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataSpec:
    """What ``--data`` names: ``kind`` is shapes, plates, voc or coco; ``path`` the folder or file."""

    kind: str
    path: Path | None = None

    @property
    def synthetic(self) -> bool:
        return self.kind in SYNTHETIC

    def resolved(self) -> str:
        """The text with the path made absolute: equal for every way of naming the folder."""
        return self.kind if self.path is None else f"{self.kind}:{self.path.resolve()}"

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data(text: str) -> DataSpec:
    """``"shapes"``, ``"plates"``, ``"voc:DIR"``, ``"coco:FILE.json"`` or ``"coco:DIR"`` ->
    :class:`DataSpec`.

    Raises:
        ValueError: an unknown kind (the message lists the choices) or a missing path.
        FileNotFoundError: the folder or file does not exist.
    """
    kind, _, rest = text.partition(":")
    if kind in SYNTHETIC:
        if rest:
            raise ValueError(f"{kind} data are generated, they take no path (got {text!r})")
        return DataSpec(kind)
    if kind not in ("voc", "coco"):
        raise ValueError(f"unknown data {text!r}; choose {DATA_CHOICES}")
    if not rest:
        raise ValueError(f"{kind} data need a path: {kind}:DIR")
    path = Path(rest)
    if kind == "voc" and not path.is_dir():
        raise FileNotFoundError(f"no folder {path} (from --data {text})")
    if kind == "coco":
        if path.is_dir():
            if not (path / "annotations.json").is_file():
                raise FileNotFoundError(
                    f"folder {path} has no annotations.json: give the annotation file, "
                    "coco:FILE.json"
                )
        elif not path.is_file():
            raise FileNotFoundError(f"no file or folder {path} (from --data {text})")
    return DataSpec(kind, path)


def _normalised_data(text: str) -> str:
    """A run.json ``data`` entry with its path made absolute (for entries written before paths
    were stored resolved)."""
    kind, _, rest = str(text).partition(":")
    return f"{kind}:{Path(rest).resolve()}" if rest else kind


def _object_sizes(kind: str, image_size: int) -> dict[str, Any]:
    """Object sizes of a synthetic data set scaled with its images (the defaults at 128 px)."""
    scale = image_size / DEFAULT_IMAGE_SIZE
    if kind == "shapes":
        return {"min_size": max(2.0, 12 * scale), "max_size": max(2.0, 64 * scale)}
    return {"plate_width": (max(16.0, 32 * scale), max(16.0, 104 * scale))}


def open_data(
    spec: DataSpec,
    *,
    length: int | None,
    seed: int,
    image_size: int,
    voc_classes: Sequence[str] | None = None,
    transforms: Callable | None = None,
) -> tuple[Dataset, tuple[str, ...]]:
    """The data set ``spec`` names and its class names (``[0]`` the background).

    Synthetic data: ``length`` images (default 2000) of ``image_size`` pixels drawn with ``seed``,
    their objects scaled with the image (the data sets' defaults at 128 pixels).
    Folders: every image, or the first ``length``; VOC folders use ``voc_classes`` (default the
    20 Pascal VOC classes). ``transforms(image, target)`` is applied to every item.
    """
    if spec.synthetic:
        data = SYNTHETIC[spec.kind](
            DEFAULT_TRAIN_SIZE if length is None else length,
            seed=seed,
            image_size=image_size,
            transforms=transforms,
            **_object_sizes(spec.kind, image_size),
        )
        return data, tuple(data.classes)
    if spec.kind == "voc":
        names = tuple(voc_classes or VOC_CLASSES)
        try:
            data = VOCDataset(spec.path, names, transforms=transforms)
        except ValueError as error:
            if not voc_classes and "class name" in str(error):
                error.add_note(
                    "--classes a,b,c names the folder's classes (the default is the 20 Pascal "
                    "VOC classes)."
                )
            raise
    else:
        folder = spec.path if spec.path.is_dir() else spec.path.parent
        annotations = spec.path / "annotations.json" if spec.path.is_dir() else spec.path
        data = CocoDataset(folder, annotations, transforms=transforms)
        names = tuple(data.label_names[label] for label in sorted(data.label_names))
    if len(data) == 0:
        raise ValueError(f"{spec.path} holds no images")
    if length is not None:
        if length > len(data):
            raise ValueError(f"--train-size {length}, but {spec.path} holds {len(data)} images")
        data = Subset(data, range(length))
    return data, ("background", *names)


def check_data(data: Dataset, spec: DataSpec) -> ImagesChecked | None:
    """A folder's images checked by their headers (see ``DetectionFiles.check_images``), with a
    line saying what was found; None for synthetic data."""
    files = data.dataset if isinstance(data, Subset) else data
    if not isinstance(files, DetectionFiles):
        return None
    checked = files.check_images()
    if _rank() == 0:
        print(f"data {spec}: {checked}")
        others = getattr(files, "other_files", [])
        if others:
            names = ", ".join(p.name for p in others[:5]) + (" ..." if len(others) > 5 else "")
            print(f"  not read: {len(others)} files of Annotations/ that are not .xml ({names})")
    return checked


def box_corners(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Give a target without plate corners the four corners of each box, ``[N, 4, 2]``
    (top-left, top-right, bottom-right, bottom-left): what WPOD-Net learns on a folder of boxes."""
    if "corners" not in target:
        x1, y1, x2, y2 = target["boxes"].as_subclass(torch.Tensor).unbind(-1)
        corners = torch.stack((x1, y1, x2, y1, x2, y2, x1, y2), dim=-1)
        target = {**target, "corners": corners.reshape(-1, 4, 2)}  # [N, 4, 2]
    return image, target


def _training_transforms(model: str, spec: DataSpec, resize: Resize | None) -> Callable | None:
    steps = [box_corners] if model in LEARNS_CORNERS and not spec.synthetic else []
    steps += [resize] if resize is not None else []
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else v2.Compose(steps)


# --------------------------------------------------------------------------- argument types


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn ``parse``'s ValueError / FileNotFoundError into argparse's message for the option."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, FileNotFoundError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = parse.__name__
    return convert


def parse_device(text: str) -> str:
    """A device name PyTorch knows and this machine has (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    try:
        torch.device(text)
    except RuntimeError:
        raise ValueError(f"{text!r} is not a device name; use cpu, cuda, cuda:N or mps") from None
    return str(pick_device(text))


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key, value)``, the value read as a Python literal (``64``, ``0.5``,
    ``[1, 2]``, ``True``) or else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(f"expected KEY=VALUE with KEY a Python name, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return key, value


def parse_pattern(text: str) -> str:
    """A regular expression that compiles."""
    try:
        re.compile(text)
    except re.error as error:
        raise ValueError(f"{text!r} is not a regular expression: {error}") from None
    return text


def parse_multiplier(text: str) -> tuple[str, float]:
    """``PATTERN=FACTOR`` (split at the last ``=``) -> ``(pattern, factor)``."""
    pattern, sep, factor = text.rpartition("=")
    try:
        value = float(factor)
    except ValueError:
        value = math.nan
    if not sep or not pattern or not 0 < value < math.inf:
        raise ValueError(f"expected PATTERN=FACTOR with a positive FACTOR, got {text!r}")
    return parse_pattern(pattern), value


def parse_classes(text: str) -> tuple[str, ...]:
    """``"cat,dog"`` -> ``("cat", "dog")``: distinct, non-empty names."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise ValueError(f"expected class names separated by commas, got {text!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"class names must differ; {', '.join(repeated)} repeats")
    return names


def _number(kind: type, low: float, high: float | None = None, open_low: bool = False):
    """A ``kind`` number in ``[low, high]`` (``(low, high]`` with ``open_low``)."""

    def number(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            kind_name = "an integer" if kind is int else "a number"
            raise ValueError(f"expected {kind_name}, got {text!r}") from None
        too_low = value <= low if open_low else value < low
        if too_low or (high is not None and value > high) or not math.isfinite(value):
            bounds = f"{'>' if open_low else '>='} {low}" + (f" and <= {high}" if high else "")
            raise ValueError(f"must be {bounds}, got {text}")
        return value

    number.__name__ = kind.__name__
    return _argument_type(number)


# --------------------------------------------------------------------------- train


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """A learning-rate factor for ``LambdaLR``, stepped once per optimizer step: linear warm-up
    from ``1 / warmup_steps`` to 1 over ``warmup_steps`` steps, then a cosine from 1 towards 0 at
    ``total_steps``."""

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps)
        return warm * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    return factor


def _rank() -> int:
    """This process's rank under torchrun (0 for a single process)."""
    return int(os.environ.get("RANK", "0"))


def weights_fingerprint(model: torch.nn.Module) -> float:
    """The sum of the absolute values of every parameter entry, in float64: equal for two models
    with equal parameters, and almost surely different otherwise. (Buffers are left out: each
    process updates its batch-norm running statistics from its own images.)"""
    return math.fsum(p.detach().double().abs().sum().item() for p in model.parameters())


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (a temporary file, then ``os.replace``)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _run_settings(args: argparse.Namespace, spec: ModelSpec, train_size: int) -> dict[str, Any]:
    """Everything ``--resume`` must find unchanged (and the few entries it may change), as the
    plain JSON values run.json holds. Paths are stored resolved."""
    settings = {
        "model": spec.to_dict(),
        "data": args.data.resolved(),
        "image_size": args.image_size,
        "train_size": train_size,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "grad_clip_norm": args.grad_clip_norm,
        "freeze": args.freeze,
        "lr_multiplier": dict(args.lr_multiplier),
        "init_from": str(Path(args.init_from).resolve()) if args.init_from else None,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "log_every": args.log_every,
        "checkpoint_every": args.checkpoint_every,
        "device": args.device,
        "workers": args.workers,
    }
    return json.loads(json.dumps(settings))


def _read_run_file(out: Path) -> dict[str, Any]:
    """``out/run.json``, checked to be one that ``train`` wrote."""
    path = out / RUN_FILE
    if not path.is_file():
        raise CommandError(
            f"--resume: {out} has a checkpoint but no {RUN_FILE}: it was not written by "
            f"`{PROG} train`, so its settings cannot be known; start a new run with another --out"
        )
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = (
            f" at line {error.lineno}, column {error.colno}"
            if isinstance(error, json.JSONDecodeError)
            else ""
        )
        raise CommandError(
            f"--resume: {path} is not readable JSON{where} (a crash or an edit may have cut it "
            "short): start a new run with another --out"
        ) from None
    needed = ("model", "data", "epochs", "seed", "batch_size", "train_size")
    missing = [key for key in needed if not isinstance(before, dict) or key not in before]
    if missing or not isinstance(before["model"], dict) or "name" not in before["model"]:
        raise CommandError(
            f"--resume: {path} lacks {', '.join(missing) or 'the model name'}: it was not "
            f"written by `{PROG} train` (or was edited); start a new run with another --out"
        )
    return before


def _check_resume(out: Path, settings: dict[str, Any], model: torch.nn.Module) -> int:
    """Raise unless ``out`` holds a checkpoint and a run.json that ``settings`` continues, with
    weights that fit ``model``; return the checkpoint's step."""
    checkpoint_path = out / CHECKPOINT_NAME
    if not checkpoint_path.is_file():
        raise CommandError(
            f"--resume: no checkpoint {checkpoint_path} to resume from; run without "
            "--resume to start training"
        )
    before = _read_run_file(out)
    if before["model"]["name"] != settings["model"]["name"]:
        raise CommandError(
            f"--resume: the checkpoint in {out} is of model {before['model']['name']!r}, not "
            f"{settings['model']['name']!r}"
        )
    before = {**before, "data": _normalised_data(before["data"])}
    changed = [
        f"{key} {before.get(key)!r} -> {value!r}"
        for key, value in settings.items()
        if key not in RESUMABLE_CHANGES and before.get(key) != value
    ]
    if changed:
        raise CommandError(
            f"--resume: the run in {out} was started with other settings ({'; '.join(changed)}); "
            "resume with the same ones, or start a new run with another --out"
        )
    state = load_checkpoint(checkpoint_path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CommandError(
            f"--resume: {checkpoint_path} is not a checkpoint written by `{PROG} train`"
        )
    check_weights_fit(model, state.get("model", {}), str(checkpoint_path))
    if before["epochs"] != settings["epochs"]:
        print(
            f"resuming with --epochs {settings['epochs']} instead of {before['epochs']}: the "
            "learning-rate schedule is stretched to the new length"
        )
    return int(state["step"])


def _initial_weights(path: str) -> dict[str, torch.Tensor] | str:
    """What ``load_partial_state_dict`` needs for ``--init-from``: a model file's state dict, or
    the path of a fit checkpoint or state-dict file (which it reads itself)."""
    state = load_checkpoint(path)
    if isinstance(state, dict) and state.get("format") == MODEL_FILE_FORMAT:
        return state["state_dict"]
    return path


def train(args: argparse.Namespace) -> int:
    spec = args.data
    _check_classes_option(spec, args.classes)
    if not spec.synthetic and args.image_size is not None:
        raise CommandError(
            "--image-size sets the side of generated images (shapes, plates); bring a folder's "
            "images to one size with --resize N"
        )
    if args.resize_mode is not None and args.resize is None:
        raise CommandError(f"--resize-mode {args.resize_mode} needs --resize N (the size)")
    if spec.synthetic and args.image_size is None:
        args.image_size = DEFAULT_IMAGE_SIZE
    resize = None if args.resize is None else Resize(args.resize, args.resize_mode or "letterbox")
    data, classes = open_data(
        spec,
        length=args.train_size,
        seed=args.seed,
        image_size=args.image_size or DEFAULT_IMAGE_SIZE,
        voc_classes=args.classes,
        transforms=_training_transforms(args.model, spec, resize),
    )
    check_data(data, spec)
    try:
        model_spec = ModelSpec(
            args.model, classes, dict(args.option), args.frozen_batch_norm, resize
        )
    except TypeError as error:  # a literal that a model file cannot hold (a set, bytes)
        raise CommandError(f"--option: {error}") from None
    seed_everything(args.seed)  # the same initial weights on every process and in every run
    try:
        model = model_spec.build()
    except (ValueError, TypeError, RuntimeError) as error:
        raise CommandError(
            f"--model {args.model} with the classes of --data {spec} {list(classes[1:])}: {error}"
        ) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file: give a folder (it is created if need be)")
    settings = _run_settings(args, model_spec, len(data))
    world_size = settings["world_size"]
    steps_per_epoch = math.ceil(math.ceil(len(data) / world_size) / args.batch_size)
    total = args.epochs * steps_per_epoch
    if args.resume:
        step = _check_resume(out, settings, model)
        if step >= min(total, args.max_steps or total):
            print(
                f"the run in {out} has already trained {step} steps, all that --epochs "
                f"{args.epochs}{f' and --max-steps {args.max_steps}' if args.max_steps else ''} "
                "ask for: nothing to train. Raise --epochs (or --max-steps) to train further; "
                f"{out / MODEL_FILE} holds the model"
            )
            return EXIT_OK
    elif (out / CHECKPOINT_NAME).is_file():
        raise CommandError(
            f"{out} already holds a training run ({CHECKPOINT_NAME}): pass --resume to continue "
            "it, or choose another --out"
        )
    if args.init_from and not args.resume:
        try:
            report = load_partial_state_dict(model, _initial_weights(args.init_from))
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise CommandError(f"--init-from {args.init_from}: {error}") from None
        print(f"initial weights from {args.init_from}: {str(report).splitlines()[0]}")
    if args.freeze:
        frozen = freeze(model, args.freeze)
        print(f"frozen: {len(frozen)} parameter tensors matching {args.freeze}")
    optimizer = torch.optim.AdamW(
        param_groups(model, args.lr, dict(args.lr_multiplier)),
        lr=args.lr,
        weight_decay=args.weight_decay,
    )
    scheduler = None
    if args.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(total, max(1, min(200, total // 20)))
        )
    if _rank() == 0:
        out.mkdir(parents=True, exist_ok=True)
        for path in remove_temporary_files(out, RUN_FILES):
            print(f"removed {path}, left behind by an interrupted write")
        _write_json(out / RUN_FILE, settings)

    try:
        history = fit(
            model,
            data,
            optimizer=optimizer,
            epochs=args.epochs,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            scheduler=scheduler,
            device=args.device,
            grad_clip_norm=args.grad_clip_norm,
            checkpoint_dir=out,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            log_every=args.log_every,
            progress=not args.no_progress,
            seed=args.seed,
            num_workers=args.workers,
        )
    except BaseException as error:
        if (out / CHECKPOINT_NAME).is_file():
            fix = "" if isinstance(error, KeyboardInterrupt) else "Fix the cause, then "
            error.add_note(f"{fix}add --resume to continue from the checkpoint.")
        raise
    if world_size > 1:
        # Every process reports: identical fingerprints show that the replicas stayed identical.
        print(
            f"rank {_rank()} of {world_size}: step {history.step[-1]}, weights "
            f"fingerprint {weights_fingerprint(model):.10f}",
            flush=True,
        )
    if _rank() == 0:
        _write_json(out / HISTORY_FILE, history.state_dict())
        meta = {
            "data": str(args.data),
            "image_size": args.image_size,
            "seed": args.seed,
            "train_size": len(data),
            "steps": history.step[-1] if history.step else 0,
            "epochs": history.epoch[-1] + 1 if history.epoch else 0,
        }
        path = save_model_file(out / MODEL_FILE, model, model_spec, meta)
        last = f"last loss {history.loss[-1]:.4g}" if history.loss else "no step trained"
        print(
            f"trained {args.model} to step {meta['steps']} ({last}); wrote {path}, "
            f"{out / HISTORY_FILE}, {out / CHECKPOINT_NAME}"
        )
    return EXIT_OK


# --------------------------------------------------------------------------- evaluate


def _check_classes_option(spec: DataSpec, classes: Sequence[str] | None) -> None:
    if spec.kind != "voc" and classes:
        raise CommandError("--classes names the classes of VOC folders only")


def evaluation_data(
    spec: DataSpec, meta: dict[str, Any], args: argparse.Namespace, voc_classes: Sequence[str]
) -> tuple[Dataset, tuple[str, ...], str]:
    """The held-out data for ``evaluate``, its class names and a line describing it."""
    _check_classes_option(spec, args.classes)
    if not spec.synthetic:
        if args.split_seed is not None:
            raise CommandError(
                "--split-seed draws held-out synthetic images; a folder is evaluated whole "
                "(point --data at the held-out folder)"
            )
        data, classes = open_data(spec, length=None, seed=0, image_size=0, voc_classes=voc_classes)
        check_data(data, spec)
        return data, classes, f"{len(data)} images of {spec.path}"
    trained_on = meta.get("data") == str(spec)
    seed = args.split_seed
    if seed is None:
        seed = meta["seed"] + 1 if trained_on else 1
    image_size = meta.get("image_size") if trained_on else None
    image_size = image_size or DEFAULT_IMAGE_SIZE
    data, classes = open_data(spec, length=args.eval_size, seed=seed, image_size=image_size)
    about = f"{len(data)} held-out {spec.kind} images (seed {seed}, {image_size} px)"
    if trained_on and seed == meta["seed"]:
        overlap = min(len(data), meta["train_size"])
        print(
            f"warning: --split-seed {seed} is the training seed: the first {overlap} of these "
            "images are training images",
            file=sys.stderr,
        )
        about += ", the training seed"
    return data, classes, about


def metric_report(metrics: dict[str, torch.Tensor], classes: Sequence[str]) -> dict[str, Any]:
    """``mean_average_precision``'s output as plain numbers with class names: ``map``,
    ``map_50``, ``map_75``, ``mar_100``, ``voc_map_50`` and ``per_class`` ``{name: {"map",
    "voc_map_50"}}`` for every object class (-1 where the data hold none of it)."""
    summary = {
        key: float(metrics[key]) for key in ("map", "map_50", "map_75", "mar_100", "voc_map_50")
    }
    seen = metrics["classes"].tolist()
    per_class = {}
    for label, name in enumerate(classes[1:], start=1):
        if label in seen:
            i = seen.index(label)
            per_class[name] = {
                "map": float(metrics["map_per_class"][i]),
                "voc_map_50": float(metrics["voc_map_50_per_class"][i]),
            }
        else:
            per_class[name] = {"map": -1.0, "voc_map_50": -1.0}
    return {**summary, "per_class": per_class}


def evaluate_command(args: argparse.Namespace) -> int:
    spec = args.data
    if args.json and Path(args.json).is_dir():
        raise CommandError(f"--json {args.json} is a folder: give a file name")
    model, model_spec, meta = load_model_file(args.checkpoint)
    voc_classes = args.classes or model_spec.classes[1:]
    data, classes, about = evaluation_data(spec, meta, args, voc_classes)
    if classes != model_spec.classes:
        raise CommandError(
            f"{args.checkpoint} detects {list(model_spec.classes[1:])}, but --data {spec} has "
            f"classes {list(classes[1:])}"
        )
    # the model file loads on the CPU: evaluate on the best device there is, or on --device
    device = pick_device(args.device)
    predictions, targets = evaluate(model, data, device=device, batch_size=args.batch_size)
    report = metric_report(mean_average_precision(predictions, targets), classes)
    resized = f", each image {model_spec.resize} and back" if model_spec.resize else ""
    print(f"{model_spec.name} from {args.checkpoint} on {about}{resized}")
    for key in ("map", "map_50", "map_75", "mar_100", "voc_map_50"):
        print(f"  {key:<12}{report[key]:.4f}")
    print("  per class        map  voc_map_50")
    width = max(len(name) for name in report["per_class"])
    for name, values in report["per_class"].items():
        print(f"    {name:<{width}}  {values['map']:7.4f}  {values['voc_map_50']:7.4f}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, {"checkpoint": str(args.checkpoint), "data": about, **report})
        print(f"wrote {path}")
    return EXIT_OK


# --------------------------------------------------------------------------- detect


def _draw_corners(ax, image: torch.Tensor, values: torch.Tensor, stem: Path) -> list[Path]:
    """Plates: their quadrilaterals on ``ax``, and each rectified to a frontal PNG."""
    from torchvision.utils import save_image

    from tutorial_det.wpod import draw_quads, rectify

    draw_quads(ax, values, colour="yellow")
    written = []
    for k, plate in enumerate(rectify(image, values)):
        path = stem.with_name(f"{stem.name}_plate{k}.png")
        save_image(plate, path)
        written.append(path)
    return written


#: Per-detection outputs besides boxes that ``detect`` draws, by key: ``draw(ax, image, values
#: [D, ...], stem) -> files written``. A model whose outputs carry one of these keys gets it drawn.
EXTRA_OUTPUTS: dict[str, Callable[..., list[Path]]] = {"corners": _draw_corners}


def _nothing_found(scores: torch.Tensor, threshold: float) -> str:
    """Why an image shows no detection, and what to try."""
    if len(scores) == 0:
        return "  the model detected nothing at all in this image"
    best = float(scores.max())
    return (
        f"  none scored >= --score-thresh {threshold:g}; the best scored {best:.3f}: lower "
        f"--score-thresh (e.g. --score-thresh {math.floor(best * 100 + 1e-3) / 100:g}) to see it"
    )


def detect_command(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model, spec, _ = load_model_file(args.checkpoint, map_location=device)
    stems: dict[str, Path] = {}
    for image_path in map(Path, args.images):
        if image_path.stem in stems:
            raise CommandError(
                f"{image_path} and {stems[image_path.stem]} would both be written as "
                f"{image_path.stem}.png: give images with different names"
            )
        stems[image_path.stem] = image_path
        image_size(image_path)  # every image's header is checked before anything is written
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file: give a folder (it is created if need be)")
    out.mkdir(parents=True, exist_ok=True)
    for image_path in stems.values():
        image = read_image(image_path).as_subclass(torch.Tensor)
        with torch.no_grad():
            prediction = model([image.to(device)])[0]
        count = len(prediction["scores"])
        keep = prediction["scores"] >= args.score_thresh
        found = {
            key: value[keep].cpu()
            for key, value in prediction.items()
            if isinstance(value, torch.Tensor) and len(value) == count
        }
        height, width = image.shape[1:]
        figure = Figure(figsize=(8, 8 * height / width))
        ax = figure.add_axes((0, 0, 1, 1))
        show_image(image, ax=ax)
        draw_boxes(ax, found["boxes"], found["labels"], found["scores"], class_names=spec.classes)
        stem = out / image_path.stem
        written = [stem.with_suffix(".png")]
        for key, draw in EXTRA_OUTPUTS.items():
            if key in found:
                written += draw(ax, image, found[key], stem)
        figure.savefig(written[0], dpi=max(100, width / 8))
        print(f"{image_path}: {len(found['scores'])} detections -> {', '.join(map(str, written))}")
        for box, label, score in zip(
            found["boxes"].tolist(), found["labels"].tolist(), found["scores"].tolist(), strict=True
        ):
            corners = ", ".join(f"{v:.1f}" for v in box)
            print(f"  {spec.classes[label]} {score:.3f} [{corners}]")
        if not len(found["scores"]):
            print(_nothing_found(prediction["scores"], args.score_thresh))
    return EXIT_OK


# --------------------------------------------------------------------------- the parser


class _Parser(argparse.ArgumentParser):
    """argparse with one ``error:`` line (the usage is in ``--help``) and exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout; wraps option help."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train, evaluate and run the detectors of tutorial_det on the synthetic "
        "data sets or on your own Pascal VOC and COCO folders.",
        epilog="Each command's --help describes its options; train --help also the data layouts "
        "and what train writes into --out.",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    positive_int, positive_float = _number(int, 0, open_low=True), _number(float, 0, open_low=True)
    seed = _number(int, 0, 2**32 - 1)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", help="on an error, show the traceback (for reports)"
    )
    common.add_argument(
        "--device",
        type=_argument_type(parse_device),
        default=None,
        help="cpu, cuda, cuda:N or mps (default: the best available: cuda, mps, cpu)",
    )
    data = {
        "required": True,
        "type": _argument_type(parse_data),
        "metavar": "DATA",
        "help": f"the data: {DATA_CHOICES} (layouts below)",
    }
    sub = {"formatter_class": _Formatter, "parents": [common]}

    p = commands.add_parser(
        "train",
        help="train a detector with fit",
        description="Train a registered detector with fit and write the run into --out.",
        epilog=TRAIN_EPILOG,
        **sub,
    )
    p.set_defaults(run=train)
    p.add_argument("--model", required=True, choices=sorted(MODELS), help="a registered model")
    p.add_argument("--data", **data)
    p.add_argument(
        "--epochs",
        required=True,
        type=positive_int,
        help="passes over the data; also the length of the learning-rate schedule",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the run's files")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out exactly where it stopped"
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        help="images per step and process (default: 8)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        help="AdamW learning rate (default: 0.001)",
    )
    p.add_argument(
        "--weight-decay",
        type=_number(float, 0),
        default=1e-4,
        help="AdamW weight decay (default: 0.0001)",
    )
    p.add_argument(
        "--schedule",
        choices=("cosine", "constant"),
        default="cosine",
        help="learning rate over the run: cosine = linear warm-up over the first 5%% of the "
        "steps (at most 200), then a cosine to 0 at the end of --epochs; constant = --lr "
        "throughout (default: cosine)",
    )
    p.add_argument(
        "--max-steps",
        type=positive_int,
        help="stop at this step, counted from the start of the run (default: none); "
        "--resume continues from there",
    )
    p.add_argument(
        "--train-size",
        type=positive_int,
        help="images per epoch: synthetic images to draw (default: 2000), or the first N "
        "images of a folder (default: all)",
    )
    p.add_argument(
        "--image-size",
        type=positive_int,
        metavar="N",
        help="side of the synthetic images in pixels (default: 128); for folders see --resize",
    )
    p.add_argument(
        "--resize",
        type=positive_int,
        metavar="N",
        help="bring every image to N x N pixels (see below); the model file keeps it, so that "
        "evaluate and detect do the same (default: images keep their size)",
    )
    p.add_argument(
        "--resize-mode",
        choices=RESIZE_MODES,
        help="how --resize brings an image to N x N: letterbox keeps its shape and pads, "
        "stretch scales each side (default: letterbox)",
    )
    p.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="seeds the initial weights, the data order and the synthetic images (default: 0)",
    )
    p.add_argument(
        "--grad-clip-norm",
        type=positive_float,
        default=10.0,
        help="clip the gradient's total norm to this value each step (default: 10)",
    )
    p.add_argument(
        "--freeze",
        action="append",
        default=[],
        metavar="REGEX",
        type=_argument_type(parse_pattern),
        help="do not train parameters whose names match (repeatable; default: none)",
    )
    p.add_argument(
        "--lr-multiplier",
        action="append",
        default=[],
        metavar="REGEX=FACTOR",
        type=_argument_type(parse_multiplier),
        help="scale the learning rate of matching parameters (repeatable; default: none)",
    )
    p.add_argument(
        "--frozen-batch-norm",
        action="store_true",
        help="normalise with fixed statistics (FrozenBatchNorm2d) instead of each batch's",
    )
    p.add_argument(
        "--init-from",
        metavar="FILE",
        help="start from the matching weights of a model file or checkpoint (default: fresh)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_argument_type(parse_option),
        help="an option of the model's class, VALUE a Python literal (repeatable; see below)",
    )
    p.add_argument(
        "--classes",
        type=_argument_type(parse_classes),
        metavar="A,B,...",
        help="class names of a VOC folder, labels 1, 2, ... (default: the 20 VOC classes)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=500,
        metavar="STEPS",
        help="write last.pt every this many steps (default: 500); also at the end and when "
        "training stops on an error",
    )
    p.add_argument(
        "--log-every",
        type=positive_int,
        default=50,
        metavar="STEPS",
        help="print the mean losses every this many steps (default: 50)",
    )
    p.add_argument(
        "--workers",
        type=_number(int, 0),
        default=0,
        help="DataLoader worker processes that read images beside training (default: 0)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add_parser(
        "evaluate",
        help="mAP of a trained model on held-out data",
        description="COCO mAP and VOC AP of a model file on held-out data.",
        epilog=EVALUATE_EPILOG,
        **sub,
    )
    p.set_defaults(run=evaluate_command)
    p.add_argument(
        "--checkpoint", required=True, metavar="FILE", help="a model file written by train"
    )
    p.add_argument("--data", **data)
    p.add_argument(
        "--split-seed",
        type=seed,
        help="seed of the held-out synthetic images (default: the training seed + 1)",
    )
    p.add_argument(
        "--eval-size",
        type=positive_int,
        default=200,
        help="held-out synthetic images to draw (default: 200)",
    )
    p.add_argument(
        "--classes",
        type=_argument_type(parse_classes),
        metavar="A,B,...",
        help="class names of a VOC folder (default: the model file's classes)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        help="images per forward pass (default: 8)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the metrics to FILE")

    p = commands.add_parser(
        "detect",
        help="draw a trained model's detections on images",
        description="Run a model file on images and draw what it finds.",
        epilog=DETECT_EPILOG,
        **sub,
    )
    p.set_defaults(run=detect_command)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument(
        "--checkpoint", required=True, metavar="FILE", help="a model file written by train"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the drawn images")
    p.add_argument(
        "--score-thresh",
        type=_number(float, 0, 1),
        default=0.5,
        help="draw and print the detections scoring at least this (default: 0.5)",
    )
    return parser


def _paragraph(head: str, error: BaseException) -> str:
    """``head`` and ``error``'s notes as one line of text (a paragraph: no blank lines)."""
    text = " ".join([head, *getattr(error, "__notes__", [])])
    return " ".join(text.split())


def _describe(error: BaseException) -> str:
    """An exception's message; for an operating-system error, the file and what went wrong."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return (
            f"{error.filename}: {error.strerror}: check that the path is right and that you may "
            "read (or write) it"
        )
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see :data:`EXIT_OK` and its siblings)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed the problem (or --help)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    command = f"{PROG} {args.command_name}"
    try:
        return args.run(args)
    except KeyboardInterrupt as stop:
        if args.debug:
            raise
        print(_paragraph(f"{command}: interrupted.", stop), file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(_paragraph(f"{command}: error: {_describe(error)}", error), file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if args.debug:
            raise
        message = (
            f"{command}: error: unexpected {type(error).__name__}: {error}. A fault of "
            f"{PROG} (or an --option value the model cannot use): rerun with --debug to see "
            "where, and report it"
        )
        print(_paragraph(message, error), file=sys.stderr)
        return EXIT_UNEXPECTED
