"""Today's ffmpeg-subprocess decoder against a PyAV prototype, on the clips in ../shared.

Usage: python scripts/bench_decode.py [--videos DIR] [--repeat 1]

For each clip (absent clips and folders are skipped, so this runs on a clean clone), at the
default sample rate and at full rate, decodes back to back with ``iter_frames`` (ffmpeg
subprocess) and with a PyAV prototype that applies the same input restrictions (file
protocol, accepted demuxers, the probed demuxer), the same sample rule and the same output
size. Prints frames/s of each (best of ``--repeat``), their ratio, whether the two yield
exactly the same frame indices and timestamps, and how many frames are pixel-identical.
PyAV is optional: without ``import av`` only today's decoder is timed.

The machine is shared: compare the ratio within one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from _repo import ROOT

from maskwatch.core.analysis import AnalysisSettings
from worker.pipeline.decode import (
    ACCEPTED_DEMUXERS,
    MediaInfo,
    iter_frames,
    output_size,
    probe,
)
from worker.pipeline.sampling import (
    fps_fraction,
    frame_range,
    is_sample,
    round_half_away,
)

Decoded = list[tuple[int, float, int]]  # (frame index, timestamp, adler32 of the pixels)


def ffmpeg_frames(info: MediaInfo, sample_fps: float | None, max_side: int) -> Iterator[
    tuple[int, float, np.ndarray]
]:
    for frame in iter_frames(info, sample_fps=sample_fps, max_side=max_side):
        yield frame.frame_index, frame.timestamp_s, frame.image


def pyav_frames(info: MediaInfo, sample_fps: float | None, max_side: int) -> Iterator[
    tuple[int, float, np.ndarray]
]:
    """The prototype: what a PyAV decoder would do for a whole video (no segment seek).

    Not handled (the subprocess decoder does): the stream's rotation matrix (PyAV does not
    autorotate), segment seeks with pre-roll, a wall-clock timeout, a killed decoder.
    """
    import av  # optional: the benchmark only

    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(ACCEPTED_DEMUXERS)}
    fps = fps_fraction(info.fps or 0.0)
    start = Fraction(info.start_s)
    step = frame_range(info, sample_fps, 0.0, None).step
    width, height = output_size(info, max_side)
    scaled = (width, height) != (info.width, info.height)
    with av.open(f"file:{info.path.absolute()}", format=info.demuxer, options=options) as box:
        stream = next(s for s in box.streams.video if s.index == info.stream_index)
        stream.thread_type = "AUTO"  # frame threads, as the ffmpeg command line uses
        time_base = stream.time_base
        for frame in box.decode(stream):
            assert isinstance(frame, av.VideoFrame)
            if frame.pts is None or time_base is None:
                continue
            index = round_half_away((frame.pts * time_base - start) * fps)
            if index < 0 or (step is not None and not is_sample(index, step)):
                continue
            if scaled:
                image = frame.to_ndarray(
                    format="rgb24", width=width, height=height, interpolation="AREA"
                )
            else:
                image = frame.to_ndarray(format="rgb24")
            # rows padded to ffmpeg's line alignment: one contiguous array, as the pipeline gets
            yield index, float(index / fps), np.ascontiguousarray(image)


Decoder = Callable[[MediaInfo, float | None, int], Iterator[tuple[int, float, np.ndarray]]]


def timed(
    decode: Decoder, info: MediaInfo, sample_fps: float | None, max_side: int, repeat: int
) -> tuple[float, Decoded]:
    """Best wall time of ``repeat`` decodes, and the frames decoded."""
    best = float("inf")
    frames: Decoded = []
    for _ in range(repeat):
        started = time.perf_counter()
        frames = [
            (i, t, zlib.adler32(image.data)) for i, t, image in decode(info, sample_fps, max_side)
        ]
        best = min(best, time.perf_counter() - started)
    return best, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "videos")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    clips = sorted(args.videos.glob("*.mp4")) if args.videos.is_dir() else []
    if not clips:
        print(f"no clips in {args.videos}: nothing to measure")
        return
    try:
        import av

        pyav_version: str | None = av.__version__
    except ImportError:
        pyav_version = None
    settings = AnalysisSettings()
    print(f"PyAV: {pyav_version or 'not installed (only ffmpeg timed)'}; "
          f"max side {settings.max_frame_side} px; best of {args.repeat}")
    print("| clip | size | rate | frames | ffmpeg fps | PyAV fps | PyAV/ffmpeg "
          "| same indices+timestamps | identical pixels |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in clips:
        info = probe(path)
        for sample_fps in (settings.sample_fps, None):
            rate = "full" if sample_fps is None else f"{sample_fps:g} fps"
            side = settings.max_frame_side
            ffmpeg_s, ours = timed(ffmpeg_frames, info, sample_fps, side, args.repeat)
            cells = [path.name, f"{info.width}x{info.height}", rate, str(len(ours)),
                     f"{len(ours) / ffmpeg_s:.0f}"]
            if pyav_version is None:
                cells += ["-", "-", "-", "-"]
            else:
                pyav_s, theirs = timed(pyav_frames, info, sample_fps, side, args.repeat)
                same_times = [(i, t) for i, t, _ in ours] == [(i, t) for i, t, _ in theirs]
                same_pixels = sum(a[2] == b[2] for a, b in zip(ours, theirs, strict=False))
                cells += [f"{len(theirs) / pyav_s:.0f}", f"{ffmpeg_s / pyav_s:.2f}",
                          "yes" if same_times else f"NO ({len(theirs)} frames)",
                          f"{same_pixels}/{len(ours)}"]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
