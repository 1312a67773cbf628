"""A finished job's people: its segments' tracks stitched into one track per appearance."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from storage.models import Job, Track
from storage.repositories import tracks as track_repo
from worker.pipeline.track import TrackPiece, dominant_label, label_seconds, stitch

logger = logging.getLogger(__name__)


def finalise_tracks(session: Session, job: Job) -> int:
    """Stitch the tracks that continue over segment boundaries and number the job's tracks.

    Run once per job, when its last segment is stored (under the job's lock in the
    distributed path). A track seen by two segments (in the later one's warm-up, or resumed
    just after the boundary) becomes one; its figures are the sums of its pieces'. Tracks
    are then numbered from 1 in order of first appearance.

    Returns:
        The number of tracks (people) the job has.
    """
    tracks = track_repo.job_tracks(session, job.id)
    if len({t.segment_index for t in tracks}) > 1:
        tracks = _stitch_segments(session, job, tracks)
    for number, track in enumerate(sorted(tracks, key=lambda t: (t.first_s, t.id)), start=1):
        track.track_index = number
        track.handoff = None  # only stitching needed it
    session.flush()
    return len(tracks)


def _stitch_segments(session: Session, job: Job, tracks: list[Track]) -> list[Track]:
    needed: set[int] = set()
    for track in tracks:
        needed.update((track.first_frame_index, track.last_frame_index))
        if track.handoff is not None:
            needed.add(int(track.handoff["frame_index"]))
    boxes = track_repo.face_boxes(session, job.id, sorted(needed))
    pieces = []
    for track in tracks:
        own = {frame: box for (track_id, frame), box in boxes.items() if track_id == track.id}
        box = (track.x1, track.y1, track.x2, track.y2)
        handoff = None
        if track.handoff is not None:
            handoff = (int(track.handoff["frame_index"]), _box(track.handoff["box"]))
        pieces.append(
            TrackPiece(
                id=track.id,
                segment_index=track.segment_index,
                first_s=track.first_s,
                last_s=track.last_s,
                first_box=own.get(track.first_frame_index, box),
                last_box=own.get(track.last_frame_index, box),
                handoff=handoff,
                boxes_at=own,
            )
        )
    links = stitch(pieces)
    by_id = {track.id: track for track in tracks}
    root: dict[int, int] = {}
    # Segment order: a piece's predecessor has already found its own root.
    for track in tracks:
        before = links.get(track.id)
        if before is None:
            continue
        into = by_id[root.get(before, before)]
        root[track.id] = into.id
        seconds = label_seconds(
            {
                "seconds_masked": into.seconds_masked + track.seconds_masked,
                "seconds_unmasked": into.seconds_unmasked + track.seconds_unmasked,
                "seconds_incorrect": into.seconds_incorrect + track.seconds_incorrect,
            }
        )
        track_repo.absorb(session, into, track, dominant_label(seconds))
    if root:
        logger.info("job %s: %d track(s) stitched over segment boundaries", job.id, len(root))
    return [track for track in tracks if track.id not in root]


def _box(values: list[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)
