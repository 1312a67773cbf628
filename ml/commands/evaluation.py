"""`maskwatch evaluate-scenes`: whole-pipeline accuracy on Pascal VOC annotated scenes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from maskwatch.settings import get_settings


def parse_thresholds(value: str | None) -> tuple[float, float, float] | None:
    """'0.6,0.7,0.7' -> MTCNN's three stage thresholds, each in (0, 1]."""
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: expected three numbers like 0.6,0.7,0.7") from exc
    if len(parts) != 3 or not all(0 < v <= 1 for v in parts):
        raise typer.BadParameter(f"{value!r}: expected three numbers in (0, 1]")
    return parts[0], parts[1], parts[2]


def _folder(metavar: str, help_text: str) -> Any:
    """A command-line argument naming a folder that must exist."""
    return typer.Argument(metavar=metavar, exists=True, file_okay=False, help=help_text)


def evaluate_scenes(
    annotations_dir: Annotated[
        Path, _folder("ANNOTATIONS_DIR", "Folder of Pascal VOC .xml files.")
    ],
    images_dir: Annotated[Path, _folder("IMAGES_DIR", "Folder of the images they describe.")],
    split_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Evaluate only the scene ids listed here."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many scenes (sorted by id).")
    ] = None,
    min_face_size: Annotated[
        int | None, typer.Option(min=4, help="MTCNN's smallest face, in pixels.")
    ] = None,
    upscale: Annotated[
        float | None, typer.Option(min=0.1, help="Enlarge frames by this factor before detection.")
    ] = None,
    thresholds: Annotated[
        str | None, typer.Option(help="MTCNN stage thresholds of colour frames, e.g. 0.6,0.7,0.7.")
    ] = None,
    mono_thresholds: Annotated[
        str | None, typer.Option(help="MTCNN stage thresholds of monochrome (night/infrared) "
                                 "frames, e.g. 0.5,0.6,0.6; 'colour' for the colour ones.")
    ] = None,
    mono_face_threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Face threshold of monochrome frames."),
    ] = None,
    face_threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Keep faces with face_prob at least this."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Classifier checkpoint (default: the configured one)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    detector_weights: Annotated[
        str | None,
        typer.Option(
            help="MTCNN weights file, or a.pt+b.pt for two detectors merged (default: the "
            "configured ones, i.e. the shipped merged pair).",
        ),
    ] = None,
    mirror: Annotated[
        bool | None,
        typer.Option(help="Average each face with its mirror image (default: as configured, "
                     "MASKWATCH_MIRROR_FACES, on)."),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Rounds of the bootstrap over scenes behind the 95% "
                          "intervals (0: no intervals).")
    ] = 1000,
) -> None:
    """Run the whole pipeline on annotated scenes and score it at IoU 0.5 (VOC rules)."""
    # torch, torchmetrics, the data readers: imported when the command runs, not for --help
    from maskwatch.runtime import SetupError, analysis_settings, models_for
    from ml.data.scenes import load_scenes, read_split
    from ml.evaluation.run import describe_run, evaluate, predict_scenes
    from worker.pipeline.errors import InputError

    settings = get_settings()
    if checkpoint is not None:
        settings = settings.model_copy(update={"checkpoint": checkpoint})
    if mirror is not None:
        settings = settings.model_copy(update={"mirror_faces": mirror})
    console = Console(stderr=True)
    analysis = analysis_settings(
        settings,
        min_face_size=min_face_size,
        upscale=upscale,
        face_threshold=face_threshold,
        detector_thresholds=parse_thresholds(thresholds),
        detector_weights=detector_weights,
        mono_face_threshold=mono_face_threshold,
    )
    if mono_thresholds is not None:  # "colour": monochrome frames use the colour thresholds
        analysis = replace(analysis, mono_thresholds=None if mono_thresholds == "colour"
                           else parse_thresholds(mono_thresholds))
    scene_ids = read_split(split_file) if split_file is not None else None
    try:
        scenes = load_scenes(annotations_dir, images_dir, scene_ids, limit)
        if not scenes:
            raise InputError(f"no .xml annotations to evaluate in {annotations_dir}")
        models = models_for(settings, analysis)
        with Progress(console=console, disable=as_json, transient=True) as progress:
            task = progress.add_task("scenes", total=len(scenes))
            predictions = predict_scenes(
                scenes, models, analysis, on_scene=lambda _: progress.advance(task)
            )
    except (SetupError, InputError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    report = {
        **describe_run(analysis, settings.checkpoint, models.classifier.class_names),
        **evaluate(scenes, predictions, models.classifier.class_names,
                   bootstrap_rounds=bootstrap),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        render(Console(), report)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _range(interval: list[float] | None) -> str:
    return "-" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"


def render(console: Console, report: dict[str, Any]) -> None:
    """The report as two small tables and a summary.

    AP is VOC all-point AP; AP101 the torchmetrics/pycocotools cross-check (COCO rules).
    P and R are at the pipeline's own output; P* and R* at the score cut with the best F1.
    """
    classes = Table(
        title=f"{report['scenes']} scenes, IoU {report['iou_threshold']}: per class",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    classes.caption = "P, R: the pipeline's output; P*, R*: best F1, at score >= cut"
    classes.caption_justify = "left"
    intervals = report.get("intervals") or {}
    for column in ("class", "GT", "AP", "AP101", "P", "R", "P*", "R*", "cut"):
        classes.add_column(column, justify="left" if column == "class" else "right", no_wrap=True)
    for name, row in report["per_class"].items():
        best = row["best_f1"]
        classes.add_row(
            name,
            str(row["support"]),
            _num(row["ap"]),
            _num(row["ap_coco101"]),
            _num(row["operating"]["precision"]),
            _num(row["operating"]["recall"]),
            _num(best["precision"]),
            _num(best["recall"]),
            _num(best["threshold"]),
        )
    console.print(classes)
    if intervals:
        console.print(
            "AP, 95% interval (bootstrap over scenes): "
            + ", ".join(f"{name} {_range(interval)}" for name, interval in intervals["ap"].items())
        )

    faces = report["faces"]
    sizes = Table(
        title="faces, any label: recall by GT short side (px)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("all", *faces["recall_by_size"]):
        sizes.add_column(column, justify="right")
    sizes.add_row(
        f"{_num(faces['recall'])} of {faces['gt']}",
        *(f"{_num(b['recall'])} of {b['gt']}" for b in faces["recall_by_size"].values()),
    )
    console.print(sizes)

    compliance, timing = report["compliance"], report["timing"]
    console.print(
        f"face precision {_num(faces['precision'])}, face AP {_num(faces['ap'])}, "
        f"face recall 95% {_range(intervals.get('face_recall'))}\n"
        f"compliance MAE {_num(compliance['mae'])} (95% {_range(intervals.get('mae'))}) "
        f"over {compliance['scenes']} scenes "
        f"({compliance['scenes_missed']} with no face found, scored at worst case; "
        f"{_num(compliance['mae_detected'])} over the others)\n"
        f"{_num(timing['ms_per_image'], 0)} ms/image "
        f"({_num(timing['detector_ms_per_image'], 0)} in the face detector), "
        f"{_num(timing['images_per_s'], 2)} images/s"
    )


def register(app: typer.Typer) -> None:
    app.command("evaluate-scenes")(evaluate_scenes)
