"""CLI commands to prepare crop data, train the mask classifier and evaluate checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from maskwatch.settings import DEFAULT_CHECKPOINT, get_settings

console = Console()

SHIPPED_MODELS = DEFAULT_CHECKPOINT.parent  # worker/models/


def refuse_shipped(out: Path, overwrite_shipped: bool) -> None:
    """Stop a training command that would replace a shipped model file, unless asked to."""
    if out.resolve().parent == SHIPPED_MODELS and out.exists() and not overwrite_shipped:
        raise typer.BadParameter(
            f"{out} is a shipped model; write elsewhere or pass --overwrite-shipped",
            param_hint="--out",
        )


OverwriteShipped = Annotated[bool, typer.Option(
    "--overwrite-shipped", help="Allow --out to replace a shipped file in worker/models/.")]


def register(app: typer.Typer) -> None:
    """Add the lab's crop commands to the ``maskwatch`` app."""
    app.command("prepare-data")(prepare_data)
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("ensemble")(ensemble)
    app.command("train-detector")(train_detector)


class _ProgressObserver:
    """Shows training phases as rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def begin(self, task: str, total: int) -> None:
        self.tasks[task] = self.progress.add_task(task, total=total, info="")

    def advance(self, task: str, info: str = "") -> None:
        self.progress.update(self.tasks[task], advance=1, info=info)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console)


def prepare_data(
    shared_dir: Annotated[Path, typer.Argument(help="Shared data folder (holds datasets/).")],
    out: Annotated[Path, typer.Option("--out", help="Output: {train,val}/<class>/*.jpg.")],
    val_fraction: Annotated[float, typer.Option(help="Share of faces for validation.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the group split and box jitter.")] = 0,
    sources: Annotated[str, typer.Option(help=(
        "Comma-separated sources to include; kaggle_detected (the kaggle scenes cut where "
        "the detector finds faces, with a not_face class) is only built when asked."
    ))] = "chandrikadeb7,prajnasb,kaggle",
    cache_dir: Annotated[Path, typer.Option(help="Detector output cache.")] = Path("var/cache"),
    splits_dir: Annotated[Path | None, typer.Option(
        help="Folder of kaggle_scenes_{train,val}.txt (default ml/training/splits).")] = None,
    write_splits: Annotated[bool, typer.Option(
        help="Recompute the kaggle scene split, overwriting the committed lists.")] = False,
    detector_weights: Annotated[str | None, typer.Option(
        help="MTCNN weights that cut the crops (a file under worker/models/ or a path, or "
             "a.pt+b.pt; default: mtcnn_finetuned.pt, pinned so that the training data does "
             "not follow a change of the shipped detector).")] = None,
) -> None:
    """Cut face crops from the shared datasets into group-aware train/val class folders."""
    from dataclasses import replace

    import torch

    from ml.training.prepare import DEFAULT_SPLITS_DIR, PrepareConfig, prepare
    from worker.pipeline.detect import build_detector

    torch.set_num_threads(1)
    config = PrepareConfig(val_fraction=val_fraction, seed=seed)
    if detector_weights is not None:
        from worker.pipeline.detect import resolve_weights, weights_names

        for name in weights_names(detector_weights):
            if name is not None and not resolve_weights(name).is_file():
                raise typer.BadParameter(f"no such file: {resolve_weights(name)}",
                                         param_hint="--detector-weights")
        config = replace(
            config,
            detector=replace(config.detector, detector_weights=detector_weights),
            scene_detector=replace(config.scene_detector, detector_weights=detector_weights),
        )
    with _progress() as progress:
        task = progress.add_task("faces", total=None, info="")
        manifest = prepare(
            shared_dir, out, config,
            make_detector=lambda c: build_detector(c, torch.device("cpu")),
            sources=[s.strip() for s in sources.split(",") if s.strip()],
            cache_dir=cache_dir, splits_dir=splits_dir or DEFAULT_SPLITS_DIR,
            write_splits=write_splits, on_item=lambda: progress.advance(task))
    table = Table(title=f"crops in {out}")
    for column in ("source", "class", "train", "val", "skipped"):
        table.add_column(column, justify="left" if column in ("source", "class") else "right")
    for source, classes in manifest["counts"].items():
        for class_name, splits in classes.items():
            skipped = manifest["skipped"].get(source, {}).get(class_name, {})
            table.add_row(source, class_name, str(splits.get("train", 0)),
                          str(splits.get("val", 0)),
                          ", ".join(f"{k} {v}" for k, v in skipped.items()))
    console.print(table)
    console.print(f"manifest: {out / 'manifest.json'}")


def train(
    data_dirs: Annotated[list[Path], typer.Argument(help="Folders with class subfolders.")],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write.")],
    epochs: Annotated[int, typer.Option()] = 30,
    arch: Annotated[str, typer.Option(help="mask_cnn (the shipped architecture).")] = "mask_cnn",
    size: Annotated[int, typer.Option(help="Network input side in pixels.")] = 48,
    width: Annotated[int, typer.Option(help="mask_cnn channel width.")] = 16,
    val_dir: Annotated[list[Path] | None, typer.Option(
        "--val-dir", help="Validation folder with class subfolders (repeatable).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
    workers: Annotated[int, typer.Option(help="DataLoader augmentation processes.")] = 1,
    batch_size: Annotated[int, typer.Option()] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one-cycle).")] = 3e-3,
    balance_power: Annotated[float, typer.Option(
        help="Sampling weight count(stratum)**-p: 1 balanced, 0 as found.")] = 0.5,
    balance_by: Annotated[str, typer.Option(
        help="Sampling strata: class, or source (each data dir's classes apart).")] = "source",
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 5e-4,
    label_smoothing: Annotated[float, typer.Option(help="Cross-entropy label smoothing.")] = 0.1,
    frame_edge: Annotated[float, typer.Option(
        help="Share of training crops given black bands, as where a box leaves the frame.")] = 0.25,
    merge_incorrect: Annotated[bool, typer.Option(
        help="Train incorrect_mask crops as without_mask (two-class model).")] = False,
    overwrite_shipped: OverwriteShipped = False,
) -> None:
    """Train the mask classifier on face-crop folders and save a checkpoint."""
    refuse_shipped(out, overwrite_shipped)
    from ml.training.train import TrainConfig
    from ml.training.train import train as run_training

    config = TrainConfig(arch=arch, size=size, width=width, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                         balance_power=balance_power, balance_by=balance_by,
                         label_smoothing=label_smoothing, frame_edge=frame_edge,
                         merge_incorrect=merge_incorrect, seed=seed, threads=threads,
                         workers=workers)
    try:
        with _progress() as progress:
            result = run_training(config, data_dirs, out, val_dir or [],
                                  _ProgressObserver(progress))
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    info = result.checkpoint.training
    console.print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB): classes "
                  f"{list(result.checkpoint.class_names)}, counts {info['counts']}, "
                  f"{info['seconds']:.0f} s training")
    if "val" in result.checkpoint.metrics:
        _print_report(result.checkpoint.metrics["val"])


def ensemble(
    checkpoints: Annotated[list[Path], typer.Argument(
        exists=True, dir_okay=False, help="Trained classifier checkpoints (two or more).")],
    out: Annotated[Path, typer.Option("--out", help="The ensemble checkpoint to write.")],
    val_dir: Annotated[list[Path] | None, typer.Option(
        exists=True, file_okay=False,
        help="Held-out class folders to score the ensemble on (kept in the file, as train does)."
    )] = None,
    overwrite_shipped: OverwriteShipped = False,
) -> None:
    """Average several classifiers trained with one recipe (e.g. different seeds) into one file."""
    refuse_shipped(out, overwrite_shipped)
    from ml.evaluation.crops import evaluate_checkpoint
    from worker.pipeline.classify import Checkpoint, ensemble_checkpoint

    try:
        combined = ensemble_checkpoint([Checkpoint.load(path) for path in checkpoints])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="CHECKPOINTS") from exc
    combined.training["member_files"] = [path.name for path in checkpoints]
    combined.save(out)
    if val_dir:
        combined.metrics = {"val": evaluate_checkpoint(Checkpoint.load(out), val_dir)}
        combined.save(out)
        _print_report(combined.metrics["val"])
    console.print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB): "
                  f"{len(checkpoints)} members, classes {list(combined.class_names)}")


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Classifier checkpoint (.pt).")],
    data_dirs: Annotated[list[Path], typer.Argument(help="Folders with class subfolders.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    latency: Annotated[bool, typer.Option(help="Also time CPU ms per face (batch 1, 8).")] = False,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
    mirror: Annotated[
        bool | None,
        typer.Option(help="Average each face with its mirror image (default: as configured, "
                     "MASKWATCH_MIRROR_FACES, on)."),
    ] = None,
) -> None:
    """Score a checkpoint on face-crop class folders through the inference path."""
    import torch

    from ml.evaluation.crops import evaluate_checkpoint, measure_latency
    from worker.pipeline.classify import Checkpoint

    torch.set_num_threads(threads)
    mirror_faces = get_settings().mirror_faces if mirror is None else mirror
    loaded = Checkpoint.load(checkpoint)
    report = evaluate_checkpoint(loaded, data_dirs, mirror=mirror_faces)
    report["checkpoint"] = checkpoint.name
    if latency:
        report["ms_per_face"] = measure_latency(loaded, threads=threads, mirror=mirror_faces)
        report["ms_per_face"]["threads"] = threads
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _print_report(report)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _print_report(report: dict[str, Any]) -> None:
    names = report["class_names"]
    console.print(
        f"[bold]{report['count']} crops[/]  accuracy {_pct(report['accuracy'])}%  "
        f"balanced accuracy {_pct(report['balanced_accuracy'])}%  "
        f"ECE ({report['ece_bins']} bins) {report['ece']:.3f}  "
        f"compliance accuracy {_pct(report['compliance']['accuracy'])}%")
    if report.get("label_mapping"):
        console.print(f"folder classes scored as: {report['label_mapping']}")
    per_class = Table(title="per class")
    for column in ("class", "precision", "recall", "F1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name in names:
        row = report["per_class"][name]
        per_class.add_row(name, _pct(row["precision"]), _pct(row["recall"]), _pct(row["f1"]),
                          str(row["support"]))
    console.print(per_class)
    matrix = Table(title="confusion matrix (rows true, columns predicted)")
    matrix.add_column("true \\ predicted")
    for name in names:
        matrix.add_column(name, justify="right")
    for name, row in zip(names, report["confusion_matrix"], strict=True):
        matrix.add_row(name, *(str(v) for v in row))
    console.print(matrix)
    slices = Table(title="slices")
    slices.add_column("slice", no_wrap=True)
    for column in ("count", "acc.", "bal. acc.", *(f"recall {n}" for n in names)):
        slices.add_column(column, justify="right")
    for kind, parts in report["slices"].items():
        for part, row in parts.items():
            slices.add_row(f"{kind} {part}", str(row["count"]), _pct(row["accuracy"]),
                           _pct(row["balanced_accuracy"]),
                           *(f"{_pct(row['recall'][n])} ({row['support'][n]})" for n in names))
    console.print(slices)
    if "ms_per_face" in report:
        console.print(f"CPU ms per face: {report['ms_per_face']}")


def train_detector(
    shared_dir: Annotated[Path, typer.Argument(help="Shared data folder (holds datasets/).")],
    out: Annotated[Path, typer.Option("--out", help="Weights file: {pnet, rnet, onet, info}.")],
    stages: Annotated[str, typer.Option(help=(
        "Comma-separated MTCNN stages to fine-tune (pnet, rnet, onet). The default is the "
        "shipped file's recipe; adding pnet was measured and not shipped (docs/model-card.md)."
    ))] = "rnet,onet",
    init: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False,
        help="Start from this weights file instead of the wheel's (nets not trained keep it).")
    ] = None,
    split_file: Annotated[Path | None, typer.Option(
        help="Kaggle train scene ids (default ml/training/splits/kaggle_scenes_train.txt).")
    ] = None,
    val_split_file: Annotated[Path | None, typer.Option(
        help="Held-out scene ids for PNet's window report (default: the committed val list).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="RNet/ONet epochs.")] = 4,
    lr: Annotated[float, typer.Option(help="RNet/ONet Adam learning rate.")] = 1e-4,
    pnet_epochs: Annotated[int, typer.Option()] = 6,
    pnet_lr: Annotated[float, typer.Option()] = 3e-4,
    pnet_union: Annotated[bool, typer.Option(help=(
        "Train a second PNet for masked faces and keep the first: the detector runs both "
        "and proposes what either proposes (pnet_masked in the file)."))] = False,
    pnet_unmasked_factor: Annotated[int, typer.Option(
        help="PNet samples per unmasked face, as a multiple of those per masked face.")] = 3,
    neg_veto: Annotated[float | None, typer.Option(
        min=0.0, max=1.0,
        help="Drop RNet/ONet negatives that the wheel's ONet calls a face at this probability "
             "or more (likely faces the scenes do not box).")] = None,
    unmasked_factor: Annotated[int, typer.Option(
        min=1, help="RNet/ONet samples per unmasked face, as a multiple of those per masked face."
    )] = 1,
    grey_fraction: Annotated[float, typer.Option(
        min=0.0, max=1.0,
        help="Share of RNet/ONet training crops turned greyscale (monochrome cameras).")] = 0.0,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
    overwrite_shipped: OverwriteShipped = False,
) -> None:
    """Fine-tune MTCNN's stages on the kaggle train scenes (masked faces)."""
    refuse_shipped(out, overwrite_shipped)
    import torch

    from ml.training.detector import DetectorTrainConfig, PNetTrainConfig
    from ml.training.detector import train_detector as run
    from ml.training.prepare import DEFAULT_SPLITS_DIR

    torch.set_num_threads(threads)
    config = DetectorTrainConfig(epochs=epochs, lr=lr, seed=seed, neg_veto=neg_veto,
                                 unmasked_factor=unmasked_factor, grey_fraction=grey_fraction)
    pnet_config = PNetTrainConfig(epochs=pnet_epochs, lr=pnet_lr, seed=seed,
                                  unmasked_factor=pnet_unmasked_factor)
    split = split_file or DEFAULT_SPLITS_DIR / "kaggle_scenes_train.txt"
    val_split = val_split_file or DEFAULT_SPLITS_DIR / "kaggle_scenes_val.txt"
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    with _progress() as progress:
        task = progress.add_task("scenes", total=None, info="")
        try:
            info = run(shared_dir, out, config, split, stages=wanted, pnet_config=pnet_config,
                       init=init, val_split_file=val_split, log=console.print,
                       on_scene=lambda: progress.advance(task), pnet_union=pnet_union)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--stages") from exc
    console.print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB), stages {wanted}, "
                  f"{info['seconds']:.0f} s")
