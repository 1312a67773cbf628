"""`maskwatch classify`: faces and verdicts of single images, no database involved."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from maskwatch.core.records import FaceRecord

if TYPE_CHECKING:
    from rich.console import Console


def safe_stem(name: str) -> str:
    """A file-system-safe version of an input's stem, for output names we choose."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")
    return stem[:80] or "image"


def classify(
    images: list[Path] = typer.Argument(..., help="Image files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON Lines, one per image."),
    annotate_dir: Path = typer.Option(
        None, "--annotate", help="Write each image with its faces boxed into this folder."
    ),
    min_face_size: int = typer.Option(None, help="Smallest face searched for, in pixels."),
) -> None:
    """Find every face in each image and say whether it wears a mask."""
    from rich.console import Console

    from maskwatch.runtime import SetupError, analysis_settings, models_for
    from maskwatch.settings import get_settings
    from worker.images import classify_image, face_json  # torch: imported when used
    from worker.pipeline.annotate import annotate
    from worker.pipeline.errors import InputError

    settings = get_settings()
    console = Console(stderr=as_json)
    analysis = analysis_settings(settings, min_face_size=min_face_size)
    try:
        models = models_for(settings, analysis)
    except SetupError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if annotate_dir is not None:
        annotate_dir.mkdir(parents=True, exist_ok=True)

    failures = 0
    for index, path in enumerate(images):
        try:
            result = classify_image(path, models, analysis)
        except InputError as exc:
            failures += 1
            if as_json:
                typer.echo(json.dumps({"image": str(path), "error": str(exc)}))
            else:
                console.print(f"[red]✗ {path}[/red]: {exc}")
            continue
        if annotate_dir is not None:
            scaled = [_unscale(f, result.box_scale) for f in result.record.detections]
            out = annotate_dir / f"{index:04d}_{safe_stem(path.name)}.jpg"
            annotate(result.image, scaled).save(out, quality=90)
        if as_json:
            typer.echo(json.dumps({"image": str(path), "faces": face_json(result.record)}))
        else:
            _render(console, path, result.record.detections)
    if failures:
        raise typer.Exit(1)


def _unscale(face: FaceRecord, scale: float) -> FaceRecord:
    return FaceRecord(
        face.x1 / scale,
        face.y1 / scale,
        face.x2 / scale,
        face.y2 / scale,
        face.label,
        face.score,
        face.face_prob,
    )


def _render(console: Console, path: Path, faces: list[FaceRecord]) -> None:
    from rich.table import Table

    table = Table(title=f"{path}: {len(faces)} face(s)", title_justify="left")
    for column in ("#", "box (x1, y1, x2, y2)", "label", "score"):
        table.add_column(column)
    for i, face in enumerate(faces, 1):
        box = ", ".join(f"{v:.0f}" for v in (face.x1, face.y1, face.x2, face.y2))
        table.add_row(str(i), box, face.label, f"{face.score:.3f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(classify)
