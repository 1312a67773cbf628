"""Running analysis jobs: an input file in, per-frame statistics and the job's state stored."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from maskwatch.core.analysis import AnalysisSettings
from maskwatch.core.records import FrameRecord
from storage.models import Job
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo
from worker.people import finalise_tracks
from worker.pipeline.config import check_analysable
from worker.pipeline.decode import MediaInfo, estimate_sample_count, iter_frames, output_size, probe
from worker.pipeline.errors import InputError

if TYPE_CHECKING:
    from worker.pipeline.analyze import Models

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None], None]
"""Called with (frames done, frames expected or None) after each stored batch."""

BatchRecorder = Callable[[Session, int], None]
"""Called with (session, frames stored by this run) inside each batch's transaction."""


@dataclass(frozen=True)
class Segment:
    """A time range of the input, ``end_s`` None meaning to the end."""

    start_s: float = 0.0
    end_s: float | None = None
    index: int = 0  # the segment's number within its job (0 for a job run whole)


@dataclass(frozen=True)
class SegmentOutcome:
    frames: int
    faces: int


def analyze_segment(
    session: Session,
    job: Job,
    models: Models,
    segment: Segment = Segment(),
    on_progress: ProgressCallback | None = None,
    batch_frames: int = 25,
    record_progress: BatchRecorder | None = None,
    info: MediaInfo | None = None,
) -> SegmentOutcome:
    """Analyse one time range of a job's input, committing its frames batch by batch.

    Re-running a segment replaces its rows (``replace_frames``), so a retried or duplicated
    task never double-counts. Raises InputError for input that must not be retried.

    Args:
        on_progress: called after each batch is committed; an exception it raises stops
            the analysis (and ffmpeg) and propagates.
        record_progress: called inside each batch's transaction with the frames stored so
            far by this run; when given, it replaces adding the batch to ``frames_done``.
        info: the input's probe when the caller already has it (else it is probed here).
    """
    # torch, only where frames are analysed
    from worker.pipeline.analyze import analyze_frames, classifier_for
    from worker.pipeline.gating import MotionGate, grid_start, sample_number
    from worker.pipeline.track import segment_tracker, warmup_samples

    settings = AnalysisSettings.from_dict(job.settings)
    # the job's own reading of faces, whatever this process was configured with
    models = replace(models, classifier=classifier_for(models.classifier, settings))
    info = info or probe(Path(job.input_path), job.input_name)
    check_analysable(info, settings)
    width, _ = output_size(info, settings.max_frame_side)
    box_scale = info.width / width
    people = segment_tracker(info, settings)
    gate = None if settings.exhaustive else MotionGate(people.sample_period_s or None)
    # A later segment starts a few samples early, so its tracks and votes are warm at its
    # own first frame as they would be in one run (finish_job stitches the segments'
    # tracks), and on a sample where gating forces analysis, so it gates as one run does.
    warmup_s = 0.0
    if segment.start_s > 0 and people.sample_period_s > 0:
        period = people.sample_period_s
        own_first = sample_number(segment.start_s, period)
        first = own_first - warmup_samples()
        if gate is not None or people.settle:  # both start over on the grid
            first = grid_start(first)
        # half a period more: a sample's frame may lie a little before its nominal time
        warmup_s = max(0, own_first - first) * period + period / 2
    # A segment ending before the footage does reads a sample or two more: a track started
    # on its last frame is confirmed by the tracker on the next one (not stored here).
    lookahead_end = segment.end_s
    if segment.end_s is not None and people.sample_period_s > 0:
        lookahead_end = segment.end_s + 1.5 * people.sample_period_s
    frames = iter_frames(
        info,
        sample_fps=settings.sample_fps if info.kind == "video" else None,
        start_s=max(0.0, segment.start_s - warmup_s),
        end_s=lookahead_end,
        max_side=settings.max_frame_side,
    )
    expected = estimate_sample_count(info, settings.sample_fps, segment.start_s, segment.end_s)
    done = faces = 0
    batch: list[FrameRecord] = []
    track_ids: dict[int, int] = {}
    saved_up_to: dict[int, int] = {}  # the last frame of each track as saved

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        if done == 0:
            track_repo.delete_segment_tracks(session, job.id, segment.index)
        changed = [
            track.record(segment.index, box_scale)
            for track in people.tracks.values()
            if track.stored and saved_up_to.get(track.key) != track.last_frame_index
        ]
        track_ids.update(track_repo.save_tracks(session, job, changed, track_ids))
        saved_up_to.update({r.segment_track: r.last_frame_index for r in changed})
        frame_repo.replace_frames(session, job, batch, track_ids)
        if record_progress is None:
            job_repo.add_progress(session, job.id, len(batch))
        else:
            record_progress(session, done + len(batch))
        session.commit()
        done += len(batch)
        batch.clear()
        if on_progress is not None:
            on_progress(done, expected)

    try:
        for record in analyze_frames(
            frames, models, box_scale, people, segment.start_s, gate, segment.end_s
        ):
            batch.append(record)
            faces += record.faces
            if len(batch) >= batch_frames:
                flush()
        flush()
    finally:
        if isinstance(frames, Generator):
            frames.close()  # stops ffmpeg now, not when the traceback is freed, on an error
    return SegmentOutcome(frames=done, faces=faces)


def finish_job(session: Session, job: Job) -> None:
    """Mark a job whose segments are all stored: succeeded, or failed when no frame decoded.

    Footage in which nobody appears (a CCTV archive's quiet hours) is a valid result, zero
    faces in so many frames; only input with no readable frame at all is a failure.

    Its segments' tracks are stitched into the job's people first (callers hold the job's
    lock, or run the job whole).
    """
    finalise_tracks(session, job)
    summary = report_repo.job_summary(session, job.id)
    if summary.frames == 0:
        job_repo.mark_failed(session, job, f"{job.input_name}: no frame could be decoded")
    else:
        if summary.faces == 0:
            logger.info("job %s: no faces in %d frame(s)", job.id, summary.frames)
        # The frames analysed replace the estimate from the header: done = total.
        job_repo.mark_succeeded(session, job, frames_total=summary.frames)


def failure_reason(exc: BaseException) -> str:
    """The reason a job shows when ``exc`` ended it: bad input's own message (it names the
    user's file), anything else as an internal error. The one place that words a failure,
    for the embedded path (run_job) and the Celery tasks alike."""
    if isinstance(exc, InputError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def existing_job(session: Session, job_id: str) -> Job:
    """The job ``job_id``, for the paths that run it in this process.

    Raises:
        LookupError: if there is no such job.
    """
    job = job_repo.get_job(session, job_id)
    if job is None:
        raise LookupError(f"job {job_id} not found")
    return job


@contextmanager
def failing_job_on_error(session: Session, job: Job) -> Iterator[None]:
    """Mark ``job`` failed with the reason when the block raises, for the paths that run a
    job in this process (``run_job``, ``worker.local``).

    Bad input ends the block quietly (the job shows the error naming the user's file);
    anything else is a bug: logged and raised again.
    """
    job_id = job.id  # read now: the rollback expires the job's attributes
    try:
        yield
    except Exception as exc:
        session.rollback()
        job_repo.mark_failed(session, job, failure_reason(exc))
        session.commit()
        if not isinstance(exc, InputError):  # bad input is the user's; anything else a bug
            logger.exception("job %s failed", job_id)
            raise
        logger.info("job %s failed on its input: %s", job_id, exc)


def run_job(
    session_factory: sessionmaker[Session],
    job_id: str,
    models: Models,
    on_progress: ProgressCallback | None = None,
) -> Job:
    """Analyse a whole job in this process (the embedded, no-services path)."""
    with session_factory() as session:
        job = existing_job(session, job_id)
        with failing_job_on_error(session, job):
            settings = AnalysisSettings.from_dict(job.settings)
            info = probe(Path(job.input_path), job.input_name)
            job_repo.mark_running(session, job, estimate_sample_count(info, settings.sample_fps))
            session.commit()
            analyze_segment(session, job, models, on_progress=on_progress, info=info)
            finish_job(session, job)
            session.commit()
        return job
