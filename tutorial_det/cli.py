"""The command line: train, evaluate and run a registered detector without writing Python.

::

    tutorial-det train --model ssd --data shapes --epochs 10 --out runs/ssd
    tutorial-det train --model ssd --data shapes --epochs 10 --out runs/ssd --resume
    torchrun --nproc_per_node=2 -m tutorial_det train --model ssd --data shapes --epochs 10 --out runs/ssd2
    tutorial-det evaluate --checkpoint runs/ssd/model.pt --data shapes --json runs/ssd/eval.json
    tutorial-det detect photo.jpg --checkpoint runs/ssd/model.pt --out runs/ssd/detections

(``python -m tutorial_det ...`` is the same as ``tutorial-det ...``.)

``--data`` names the data: ``shapes`` or ``plates`` (the synthetic sets, generated on the fly),
``voc:DIR`` (a Pascal VOC folder with ``Annotations/`` and ``JPEGImages/``) or ``coco:PATH`` (a
COCO annotation file, image paths relative to its folder; or a folder holding ``annotations.json``
and the images). The number of classes comes from the data.

``train`` writes into ``--out``: ``run.json`` (the run's settings, written first), ``last.pt``
(fit's checkpoint, every ``--checkpoint-every`` steps and at the end), ``history.json`` (the losses
and learning rate of every step) and ``model.pt``, the model file that ``evaluate`` and ``detect``
read (:mod:`tutorial_det.model_file`). ``--epochs`` sets the length of training and of the
learning-rate schedule; ``--max-steps`` stops earlier, and ``--resume`` continues exactly where
the checkpoint left off. Under ``torchrun`` every process trains (see
:mod:`tutorial_det.training.distributed`) and rank 0 alone writes.

Synthetic images are a pure function of ``(seed, index)``: ``train`` draws its images with
``--seed``, and ``evaluate`` draws held-out images with ``--split-seed`` (default: the training
seed + 1). A folder is evaluated whole: point ``--data`` at the held-out folder.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch.utils.data import Dataset, Subset

from tutorial_det.data import (
    VOC_CLASSES,
    CocoDataset,
    PlatesDataset,
    ShapesDataset,
    VOCDataset,
    read_image,
)
from tutorial_det.metrics import mean_average_precision
from tutorial_det.model_file import (
    MODEL_FILE_FORMAT,
    ModelSpec,
    load_model_file,
    save_model_file,
)
from tutorial_det.models import MODELS
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
from tutorial_det.viz import draw_boxes, show_image

PROG = "tutorial-det"
RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
MODEL_FILE = "model.pt"
DATA_CHOICES = "shapes, plates, voc:DIR, coco:FILE.json or coco:DIR"
SYNTHETIC = {"shapes": ShapesDataset, "plates": PlatesDataset}
DEFAULT_TRAIN_SIZE = 2000
DEFAULT_IMAGE_SIZE = 128
#: run.json entries that may change when a run is resumed (they only move the end of training).
RESUMABLE_CHANGES = ("epochs", "max_steps", "log_every", "checkpoint_every", "device", "workers")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataSpec:
    """What ``--data`` names: ``kind`` is shapes, plates, voc or coco; ``path`` the folder or file."""

    kind: str
    path: Path | None = None

    @property
    def synthetic(self) -> bool:
        return self.kind in SYNTHETIC

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
) -> tuple[Dataset, tuple[str, ...]]:
    """The data set ``spec`` names and its class names (``[0]`` the background).

    Synthetic data: ``length`` images (default 2000) of ``image_size`` pixels drawn with ``seed``,
    their objects scaled with the image (the data sets' defaults at 128 pixels).
    Folders: every image, or the first ``length``; VOC folders use ``voc_classes`` (default the
    20 Pascal VOC classes).
    """
    if spec.synthetic:
        data = SYNTHETIC[spec.kind](
            DEFAULT_TRAIN_SIZE if length is None else length,
            seed=seed,
            image_size=image_size,
            **_object_sizes(spec.kind, image_size),
        )
        return data, tuple(data.classes)
    if spec.kind == "voc":
        names = tuple(voc_classes or VOC_CLASSES)
        data = VOCDataset(spec.path, names)
    else:
        folder = spec.path if spec.path.is_dir() else spec.path.parent
        annotations = spec.path / "annotations.json" if spec.path.is_dir() else spec.path
        data = CocoDataset(folder, annotations)
        names = tuple(data.label_names[label] for label in sorted(data.label_names))
    if length is not None:
        if length > len(data):
            raise ValueError(f"--train-size {length}, but {spec.path} holds {len(data)} images")
        data = Subset(data, range(length))
    if len(data) == 0:
        raise ValueError(f"{spec.path} holds no images")
    return data, ("background", *names)


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
    except (ValueError, SyntaxError):
        return key, value


def parse_multiplier(text: str) -> tuple[str, float]:
    """``PATTERN=FACTOR`` (split at the last ``=``) -> ``(pattern, factor)``."""
    pattern, sep, factor = text.rpartition("=")
    try:
        value = float(factor)
    except ValueError:
        value = math.nan
    if not sep or not pattern or not 0 < value < math.inf:
        raise ValueError(f"expected PATTERN=FACTOR with a positive FACTOR, got {text!r}")
    return pattern, value


def _positive(kind: type) -> Callable[[str], Any]:
    def positive(text: str) -> Any:
        value = kind(text)
        if not value > 0:
            raise ValueError(f"must be positive, got {text}")
        return value

    return positive


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
    plain JSON values run.json holds."""
    settings = {
        "model": spec.to_dict(),
        "data": str(args.data),
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
        "init_from": args.init_from,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "log_every": args.log_every,
        "checkpoint_every": args.checkpoint_every,
        "device": args.device,
        "workers": args.workers,
    }
    return json.loads(json.dumps(settings))


def _check_resume(out: Path, settings: dict[str, Any]) -> None:
    """Raise unless ``out`` holds a checkpoint and a run.json that ``settings`` continues."""
    if not (out / CHECKPOINT_NAME).is_file():
        raise FileNotFoundError(
            f"--resume: no checkpoint {out / CHECKPOINT_NAME} to resume from; run without "
            "--resume to start training"
        )
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise FileNotFoundError(
            f"--resume: {out} has a checkpoint but no {RUN_FILE}: it was not written by "
            f"`{PROG} train`, so its model cannot be known"
        )
    before = json.loads(run_file.read_text())
    if before["model"]["name"] != settings["model"]["name"]:
        raise ValueError(
            f"--resume: the checkpoint in {out} is of model {before['model']['name']!r}, not "
            f"{settings['model']['name']!r}"
        )
    changed = [
        f"{key} {before.get(key)!r} -> {value!r}"
        for key, value in settings.items()
        if key not in RESUMABLE_CHANGES and before.get(key) != value
    ]
    if changed:
        raise ValueError(
            f"--resume: the run in {out} was started with other settings ({'; '.join(changed)}); "
            "resume with the same ones, or start a new run with another --out"
        )
    if before["epochs"] != settings["epochs"]:
        print(
            f"resuming with --epochs {settings['epochs']} instead of {before['epochs']}: the "
            "learning-rate schedule is stretched to the new length"
        )


def _initial_weights(path: str) -> dict[str, torch.Tensor] | str:
    """What ``load_partial_state_dict`` needs for ``--init-from``: a model file's state dict, or
    the path of a fit checkpoint or state-dict file (which it reads itself)."""
    state = load_checkpoint(path)
    return state["state_dict"] if state.get("format") == MODEL_FILE_FORMAT else path


def train(args: argparse.Namespace) -> int:
    spec = args.data
    _check_classes_option(spec, args.classes)
    if not spec.synthetic and args.image_size is not None:
        raise ValueError("--image-size applies to the synthetic data sets (shapes, plates) only")
    if spec.synthetic and args.image_size is None:
        args.image_size = DEFAULT_IMAGE_SIZE
    data, classes = open_data(
        spec,
        length=args.train_size,
        seed=args.seed,
        image_size=args.image_size or DEFAULT_IMAGE_SIZE,
        voc_classes=args.classes,
    )
    model_spec = ModelSpec(args.model, classes, dict(args.option), args.frozen_batch_norm)
    out = Path(args.out)
    settings = _run_settings(args, model_spec, len(data))
    if args.resume:
        _check_resume(out, settings)
    elif (out / CHECKPOINT_NAME).is_file():
        raise ValueError(
            f"{out} already holds a training run ({CHECKPOINT_NAME}): pass --resume to continue "
            "it, or choose another --out"
        )

    seed_everything(args.seed)  # the same initial weights on every process and in every run
    model = model_spec.build()
    if args.init_from and not args.resume:
        report = load_partial_state_dict(model, _initial_weights(args.init_from))
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
        world_size = settings["world_size"]
        steps_per_epoch = math.ceil(math.ceil(len(data) / world_size) / args.batch_size)
        total = args.epochs * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(total, max(1, min(200, total // 20)))
        )
    if _rank() == 0:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / RUN_FILE, settings)

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
    if settings["world_size"] > 1:
        # Every process reports: identical fingerprints show that the replicas stayed identical.
        print(
            f"rank {_rank()} of {settings['world_size']}: step {history.step[-1]}, weights "
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
    return 0


# --------------------------------------------------------------------------- evaluate


def _check_classes_option(spec: DataSpec, classes: Sequence[str] | None) -> None:
    if spec.kind != "voc" and classes:
        raise ValueError("--classes names the classes of VOC folders only")


def evaluation_data(
    spec: DataSpec, meta: dict[str, Any], args: argparse.Namespace
) -> tuple[Dataset, tuple[str, ...], str]:
    """The held-out data for ``evaluate``, its class names and a line describing it."""
    _check_classes_option(spec, args.classes)
    if not spec.synthetic:
        if args.split_seed is not None:
            raise ValueError(
                "--split-seed draws held-out synthetic images; a folder is evaluated whole "
                "(point --data at the held-out folder)"
            )
        data, classes = open_data(spec, length=None, seed=0, image_size=0, voc_classes=args.classes)
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
    model, model_spec, meta = load_model_file(args.checkpoint)
    data, classes, about = evaluation_data(spec, meta, args)
    if classes != model_spec.classes:
        raise ValueError(
            f"{args.checkpoint} detects {list(model_spec.classes[1:])}, but --data {spec} has "
            f"classes {list(classes[1:])}"
        )
    predictions, targets = evaluate(model, data, device=args.device, batch_size=args.batch_size)
    report = metric_report(mean_average_precision(predictions, targets), classes)
    print(f"{model_spec.name} from {args.checkpoint} on {about}")
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
    return 0


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


def detect_command(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model, spec, _ = load_model_file(args.checkpoint, map_location=device)
    stems: dict[str, Path] = {}
    for image_path in map(Path, args.images):
        if image_path.stem in stems:
            raise ValueError(
                f"{image_path} and {stems[image_path.stem]} would both be written as "
                f"{image_path.stem}.png: give images with different names"
            )
        stems[image_path.stem] = image_path
    out = Path(args.out)
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
    return 0


# --------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Train, evaluate and run the detectors of tutorial_det."
    )
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    data_help = f"the data: {DATA_CHOICES}"
    device = {"type": _argument_type(parse_device), "default": None}
    device_help = "cpu, cuda, cuda:N or mps (default: the best available)"
    classes = {
        "type": lambda text: tuple(text.split(",")),
        "metavar": "A,B,...",
        "help": "class names of a VOC folder (default: the 20 VOC classes)",
    }

    p = commands.add_parser("train", help="train a detector with fit")
    p.set_defaults(run=train)
    p.add_argument("--model", required=True, choices=sorted(MODELS), help="a registered model")
    p.add_argument("--data", required=True, type=_argument_type(parse_data), help=data_help)
    p.add_argument("--epochs", required=True, type=_positive(int), help="epochs (and schedule)")
    p.add_argument("--out", required=True, help="folder for the run's files")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--device", **device, help=device_help)
    p.add_argument(
        "--batch-size", type=_positive(int), default=8, help="images per step and process"
    )
    p.add_argument("--lr", type=_positive(float), default=1e-3, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument("--max-steps", type=_positive(int), help="stop at this step (resume later)")
    p.add_argument("--train-size", type=_positive(int), help="images per epoch (synthetic: 2000)")
    p.add_argument("--image-size", type=_positive(int), help="synthetic image side (128)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, data order, images")
    p.add_argument("--grad-clip-norm", type=_positive(float), default=10.0)
    p.add_argument(
        "--freeze",
        action="append",
        default=[],
        metavar="REGEX",
        help="do not train parameters whose names match (repeatable)",
    )
    p.add_argument(
        "--lr-multiplier",
        action="append",
        default=[],
        metavar="REGEX=FACTOR",
        type=_argument_type(parse_multiplier),
        help="scale the learning rate of matching parameters (repeatable)",
    )
    p.add_argument(
        "--frozen-batch-norm",
        action="store_true",
        help="normalise with fixed statistics (FrozenBatchNorm2d) instead of each batch's",
    )
    p.add_argument(
        "--init-from",
        metavar="FILE",
        help="start from the matching weights of a model file or checkpoint",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_argument_type(parse_option),
        help="model builder option (repeatable)",
    )
    p.add_argument("--classes", **classes)
    p.add_argument("--checkpoint-every", type=_positive(int), default=500)
    p.add_argument("--log-every", type=_positive(int), default=50)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add_parser("evaluate", help="mAP of a trained model on held-out data")
    p.set_defaults(run=evaluate_command)
    p.add_argument("--checkpoint", required=True, help="a model file written by train")
    p.add_argument("--data", required=True, type=_argument_type(parse_data), help=data_help)
    p.add_argument("--split-seed", type=int, help="seed of the held-out synthetic images")
    p.add_argument(
        "--eval-size", type=_positive(int), default=200, help="held-out synthetic images"
    )
    p.add_argument("--classes", **classes)
    p.add_argument("--batch-size", type=_positive(int), default=8)
    p.add_argument("--device", **device, help=device_help)
    p.add_argument("--json", metavar="FILE", help="also write the metrics to FILE")

    p = commands.add_parser("detect", help="draw a trained model's detections on images")
    p.set_defaults(run=detect_command)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--checkpoint", required=True, help="a model file written by train")
    p.add_argument("--out", required=True, help="folder for the drawn images")
    p.add_argument("--score-thresh", type=float, default=0.5)
    p.add_argument("--device", **device, help=device_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 success, 1 error, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage and the problem (or --help)
        return stop.code if isinstance(stop.code, int) else 2
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as error:
        print(f"{PROG} {args.command_name}: error: {error}", file=sys.stderr)
        return 1
