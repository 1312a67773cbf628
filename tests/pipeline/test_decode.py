"""Decoding stage: the sample rule and input restrictions (pure), sampling and segments on
real clips, user-facing errors."""

from __future__ import annotations

import math
import os
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from ml.footage import make_truncated_copy
from worker.pipeline import timeline as timeline_module
from worker.pipeline.decode import (
    ACCEPTED_DEMUXERS,
    MediaInfo,
    build_decode_args,
    build_packet_count_args,
    build_probe_args,
    estimate_sample_count,
    iter_frames,
    output_size,
    probe,
)
from worker.pipeline.errors import DecodeError, DecoderKilled, InputError, UnsupportedMediaError
from worker.pipeline.ffmpeg_args import build_timeline_args
from worker.pipeline.sampling import frame_range, is_sample, sample_indices
from worker.pipeline.timeline import read_timeline

REPO = Path(__file__).resolve().parents[2]
SAMPLE_VIDEO = REPO / "worker" / "samples" / "sample.mp4"


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=120,
    )


def _testsrc(out: Path, *, seconds: int, fps: str, size: str, extra: tuple[str, ...] = ()) -> Path:
    """A clip whose every frame differs (testsrc draws a counter); H.264 with B-frames."""
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}", "-t", str(seconds),
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", "-bf", "2", *extra, str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    mp4 = _testsrc(root / "clip.mp4", seconds=8, fps="10", size="320x240",
                   extra=("-movflags", "+faststart"))  # fmt: skip
    # MPEG-TS starts at 1.4 s (+ offset) and seeks to the keyframe *after* the target.
    ts = root / "clip.ts"
    _ffmpeg("-i", str(mp4), "-c", "copy", "-output_ts_offset", "3.3", str(ts))
    ntsc = _testsrc(root / "ntsc.mp4", seconds=6, fps="30000/1001", size="160x120")
    return {"mp4": mp4, "ts": ts, "ntsc": ntsc}


def _decode(path: Path, **kwargs: object) -> list[tuple[int, float, bytes]]:
    info = probe(path)
    return [
        (f.frame_index, f.timestamp_s, f.image.tobytes())
        for f in iter_frames(info, **kwargs)  # type: ignore[arg-type]
    ]


def _ffmpeg_children() -> list[int]:
    """Pids of ffmpeg processes whose parent is this process (zombies included)."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == me and comm == "ffmpeg":
            found.append(int(stat.parent.name))
    return found


# ------------------------------------------------------------------- pure: argv, sizes


def _video(
    width: int = 320,
    height: int = 240,
    fps: float = 10.0,
    duration_s: float = 8.0,
    start_s: float = 0.0,
    container_start_s: float = 0.0,
) -> MediaInfo:
    return MediaInfo(
        path=Path("/srv/uploads/job-7/clip.mp4"),
        kind="video",
        width=width,
        height=height,
        fps=fps,
        duration_s=duration_s,
        start_s=start_s,
        codec="h264",
        demuxer="mov",
        container_start_s=container_start_s,
    )


IMAGE = MediaInfo(
    path=Path("/srv/uploads/job-8/photo.jpg"),
    kind="image",
    width=4000,
    height=3000,
    fps=None,
    duration_s=None,
    start_s=0.0,
    codec="mjpeg",
    demuxer="jpeg_pipe",
)


def _value(args: list[str], option: str, occurrence: int = 0) -> str | None:
    positions = [i for i, arg in enumerate(args) if arg == option]
    return args[positions[occurrence] + 1] if len(positions) > occurrence else None


@pytest.mark.parametrize(
    ("fps", "sample_fps"),
    [(10, 2), (10, 3), (30000 / 1001, 5), (25, 5), (30, 5), (30000 / 1001, 1), (10, 7.5)],
)
def test_one_sample_rule_for_decoding_planning_and_segments(fps: float, sample_fps: float) -> None:
    """The frames a sampled decode yields (sample_indices), the frames the timeline counts
    (is_sample) and the frames of consecutive segments are the same frames."""
    info = _video(fps=fps, duration_s=60.0)
    whole = frame_range(info, sample_fps, 0.0, 60.0)
    step = whole.step
    assert step is not None
    samples = list(sample_indices(whole))
    assert samples == [n for n in range(whole.stop or 0) if is_sample(n, step)]
    assert abs(len(samples) - 60 * sample_fps) <= 1  # a sample at 60 s may round below it
    # Evenly spread: consecutive samples are floor(step) or ceil(step) frames apart.
    assert {b - a for a, b in zip(samples, samples[1:], strict=False)} <= {
        math.floor(step), math.ceil(step)
    }
    pieces = [frame_range(info, sample_fps, t, t + 7.0) for t in (0.0, 7.0, 14.0, 21.0)]
    joined = [n for piece in pieces for n in sample_indices(piece)]
    stop = pieces[-1].stop
    assert stop is not None
    assert joined == [n for n in samples if n < stop]


@pytest.mark.parametrize(
    ("args", "demuxer"),
    [
        (build_probe_args(Path("/srv/u/x.mp4")), None),
        (build_probe_args(Path("/srv/u/x.jpg"), "jpeg_pipe"), "jpeg_pipe"),
        (build_packet_count_args(Path("/srv/u/x.mkv"), "matroska", 0), "matroska"),
        (build_timeline_args(_video()), "mov"),
        (build_decode_args(_video(), sample_fps=2, start_s=3.0, end_s=6.0), "mov"),
        (build_decode_args(IMAGE, sample_fps=None, max_side=1000), IMAGE.demuxer),
    ],
    ids=["probe", "probe-still", "packet-count", "timeline", "decode-video", "decode-image"],
)
def test_every_ffprobe_and_ffmpeg_run_is_restricted_to_the_file_and_the_accepted_demuxers(
    args: list[str], demuxer: str | None
) -> None:
    """Security, not layout: ffmpeg reads nothing but the uploaded file, after probing with
    the demuxer probing found (the hostile-input tests show the refusals these produce)."""
    url = _value(args, "-i") or args[-1]
    assert url.startswith("file:/srv/u")
    input_options = args[: args.index(url)]
    assert _value(input_options, "-protocol_whitelist") == "file"
    assert _value(input_options, "-format_whitelist") == ",".join(ACCEPTED_DEMUXERS)
    assert _value(input_options, "-f") == demuxer
    assert "hls" not in ACCEPTED_DEMUXERS and "concat" not in ACCEPTED_DEMUXERS
    assert "image2" not in ACCEPTED_DEMUXERS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_fps": 0}, "sample_fps must be positive"),
        ({"sample_fps": 1, "start_s": -1.0}, "start_s must be >= 0"),
        ({"sample_fps": 1, "start_s": 4.0, "end_s": 3.0}, "end_s must be >= start_s"),
    ],
)
def test_build_decode_args_rejects_bad_ranges(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_decode_args(_video(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((1920, 1080), 1280, (1280, 720)),
        ((1080, 1920), 1280, (720, 1280)),
        ((640, 360), 1280, (640, 360)),  # never upscaled
        ((641, 361), None, (641, 361)),  # odd sizes kept when not scaled
        ((1000, 999), 500, (500, 500)),
        ((1001, 563), 1001, (1001, 563)),  # exactly max_side: untouched
        ((2002, 1126), 1001, (1000, 562)),  # odd max_side: rounded down to even
        ((8000, 10), 1280, (1280, 2)),  # never below 2 px
    ],
)
def test_output_size(
    size: tuple[int, int], max_side: int | None, expected: tuple[int, int]
) -> None:
    assert output_size(_video(*size), max_side) == expected


@pytest.mark.parametrize(
    ("info", "sample_fps", "start_s", "end_s", "expected"),
    [
        (_video(), 2, 0.0, None, 16),
        (_video(), 2, 3.0, 6.0, 6),
        (_video(), 3, 0.0, None, 24),
        (_video(), None, 0.0, None, 80),
        (_video(), 25, 0.0, None, 80),
        (_video(), 2, 7.9, None, 0),
        (_video(), 2, 9.0, 12.0, 0),
        (_video(fps=30000 / 1001, duration_s=60.06), 1, 0.0, None, 61),
        (IMAGE, 2, 0.0, None, 1),
        (IMAGE, 2, 0.0, 5.0, 1),
        (IMAGE, 2, 5.0, 10.0, 0),
    ],
)
def test_estimate_sample_count(
    info: MediaInfo, sample_fps: float | None, start_s: float, end_s: float | None, expected: int
) -> None:
    assert estimate_sample_count(info, sample_fps, start_s, end_s) == expected


# --------------------------------------------------------------------- real decoding


def test_probe_describes_a_video(clips: dict[str, Path]) -> None:
    info = probe(clips["mp4"])
    assert (info.kind, info.width, info.height, info.fps) == ("video", 320, 240, 10.0)
    assert (info.duration_s, info.start_s, info.codec) == (8.0, 0.0, "h264")


def test_probe_reads_the_stream_start_of_mpegts(clips: dict[str, Path]) -> None:
    info = probe(clips["ts"])
    assert info.start_s == pytest.approx(4.7)  # 1.4 s MPEG-TS default + 3.3 s offset
    assert info.fps == 10.0


def test_sampling_at_2fps_gives_every_fifth_source_frame(clips: dict[str, Path]) -> None:
    every = _decode(clips["mp4"], sample_fps=None)
    sampled = _decode(clips["mp4"], sample_fps=2)

    assert [index for index, _, _ in every] == list(range(80))
    assert [index for index, _, _ in sampled] == list(range(0, 80, 5))
    assert [ts for _, ts, _ in sampled] == [k * 0.5 for k in range(16)]
    # The pixels really are those source frames.
    assert [pixels for _, _, pixels in sampled] == [every[i][2] for i in range(0, 80, 5)]


def test_sampling_picks_the_nearest_frame_for_a_fractional_step(clips: dict[str, Path]) -> None:
    sampled = _decode(clips["mp4"], sample_fps=3, end_s=2.0)
    # t_k = k/3 s -> nearest 10 fps frames: 0, 3.33, 6.67, 10, 13.33, 16.67
    assert [index for index, _, _ in sampled] == [0, 3, 7, 10, 13, 17]
    assert [ts for _, ts, _ in sampled] == [0.0, 0.3, 0.7, 1.0, 1.3, 1.7]


@pytest.mark.slow
@pytest.mark.parametrize("container", ["mp4", "ts", "ntsc"])
@pytest.mark.parametrize("sample_fps", [2.0, 3.0, None])
def test_segments_decode_exactly_like_the_whole_file(
    clips: dict[str, Path], container: str, sample_fps: float | None
) -> None:
    path = clips[container]
    whole = _decode(path, sample_fps=sample_fps, end_s=6.0)
    halves = _decode(path, sample_fps=sample_fps, end_s=3.0) + _decode(
        path, sample_fps=sample_fps, start_s=3.0, end_s=6.0
    )
    uneven = [
        frame
        for start, end in [(0.0, 1.05), (1.05, 2.95), (2.95, 4.4), (4.4, 6.0)]
        for frame in _decode(path, sample_fps=sample_fps, start_s=start, end_s=end)
    ]

    assert whole, "the range holds frames"
    assert [(i, ts) for i, ts, _ in halves] == [(i, ts) for i, ts, _ in whole]
    assert halves == whole  # pixels too
    assert uneven == whole
    assert all(0 <= ts < 6.0 for _, ts, _ in whole)
    assert len(whole) == estimate_sample_count(probe(path), sample_fps, 0.0, 6.0)


def test_a_segment_past_the_end_is_empty(clips: dict[str, Path]) -> None:
    assert _decode(clips["mp4"], sample_fps=2, start_s=8.0, end_s=10.0) == []


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp"])
def test_an_image_decodes_to_one_frame(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"photo{suffix}"
    Image.new("RGB", (64, 48), (200, 40, 10)).save(path)

    info = probe(path)
    frames = list(iter_frames(info, sample_fps=2))

    assert (info.kind, info.width, info.height, info.fps) == ("image", 64, 48, None)
    assert [(f.frame_index, f.timestamp_s, f.image.shape) for f in frames] == [
        (0, 0.0, (48, 64, 3))
    ]
    assert np.abs(frames[0].image.astype(int) - (200, 40, 10)).max() <= 8
    assert list(iter_frames(info, sample_fps=2, start_s=1.0, end_s=2.0)) == []


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_still_is_decoded_in_its_exif_orientation(tmp_path: Path, orientation: int) -> None:
    stored = np.arange(24 * 36 * 3, dtype=np.uint32).astype(np.uint8).reshape(24, 36, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "still.png", exif=exif)
    with Image.open(tmp_path / "still.png") as image:
        upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))

    info = probe(tmp_path / "still.png")
    (frame,) = iter_frames(info, sample_fps=None)
    assert (info.width, info.height) == (upright.shape[1], upright.shape[0])
    np.testing.assert_array_equal(frame.image, upright)
    # Scaled to a maximum side after turning: the longer displayed side becomes 18 px.
    (small,) = iter_frames(info, sample_fps=None, max_side=18)
    assert small.image.shape[:2] == ((12, 18) if orientation < 5 else (18, 12))


def test_a_video_with_a_rotation_matrix_is_decoded_upright(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    turned = tmp_path / "portrait.mp4"
    _ffmpeg("-i", str(clips["mp4"]), "-c", "copy", "-metadata:s:v", "rotate=90", str(turned))
    info = probe(turned)
    assert (info.width, info.height) == (240, 320)
    frames = list(iter_frames(info, sample_fps=2))
    assert len(frames) == 16 and {f.image.shape for f in frames} == {(320, 240, 3)}


def test_max_side_scales_video_and_image(tmp_path: Path, clips: dict[str, Path]) -> None:
    video = next(iter(iter_frames(probe(clips["mp4"]), sample_fps=1, max_side=160)))
    portrait = tmp_path / "portrait.png"
    Image.new("RGB", (300, 1000), (0, 0, 255)).save(portrait)
    image = next(iter(iter_frames(probe(portrait), sample_fps=None, max_side=500)))

    assert video.image.shape == (120, 160, 3)
    assert image.image.shape == (500, 150, 3)
    assert video.image.dtype == np.uint8


def test_bundled_sample_clip_matches_its_manifest() -> None:
    info = probe(SAMPLE_VIDEO)
    assert (info.kind, info.width, info.height, info.fps, info.duration_s) == (
        "video", 640, 360, 10.0, 12.0,
    )  # fmt: skip
    assert estimate_sample_count(info, 1) == 12
    assert SAMPLE_VIDEO.stat().st_size < 1_000_000


# ------------------------------------------------------------------------ errors


def _user_message(error: pytest.ExceptionInfo[BaseException], tmp_path: Path) -> str:
    message = str(error.value)
    assert str(tmp_path) not in message, "no server path in what users see"
    return message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        probe(tmp_path / "missing.mp4")
    assert _user_message(error, tmp_path) == "missing.mp4: file not found"


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "uploads").mkdir()
    with pytest.raises(InputError) as error:
        probe(tmp_path / "uploads")
    assert _user_message(error, tmp_path) == "uploads: is a directory, not a video or image file"


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError) as error:
        probe(tmp_path / "empty.mp4")
    assert _user_message(error, tmp_path) == "empty.mp4: file is empty (0 bytes)"


def test_text_file_named_mp4(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("meeting notes, not a video\n")
    with pytest.raises(DecodeError) as error:
        probe(tmp_path / "notes.mp4")
    message = _user_message(error, tmp_path)
    assert message.startswith("notes.mp4: not a readable video or image file (")
    assert "moov atom not found" in message


def test_truncated_upload_without_index(tmp_path: Path) -> None:
    # Without +faststart the index (moov) is at the end: the cut file cannot even be probed.
    plain = _testsrc(tmp_path / "plain.mp4", seconds=4, fps="10", size="160x120")
    cut = make_truncated_copy(plain, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(DecodeError) as error:
        probe(cut)
    assert "cut.mp4: not a readable video or image file (moov atom not found" in _user_message(
        error, tmp_path
    )


def test_truncated_faststart_video_fails_while_decoding(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    cut = make_truncated_copy(clips["mp4"], tmp_path / "clip.mp4", 0.6)
    info = probe(cut)  # the index is intact: probing cannot tell
    assert info.duration_s == 8.0

    decoded = []
    with pytest.raises(DecodeError) as error:
        for frame in iter_frames(info, sample_fps=2):
            decoded.append(frame.frame_index)
    message = _user_message(error, tmp_path)
    assert message.startswith("clip.mp4: the file is truncated or corrupt (")
    assert 0 < len(decoded) < 16, "frames before the cut are delivered first"


def test_image_too_large(tmp_path: Path) -> None:
    Image.new("RGB", (9000, 16), (0, 0, 0)).save(tmp_path / "wide.png")
    with pytest.raises(UnsupportedMediaError) as error:
        probe(tmp_path / "wide.png")
    assert _user_message(error, tmp_path) == (
        "wide.png: unsupported frame size 9000x16 px (width and height must be 1 to 8192 px "
        "and the frame at most 40 megapixels)"
    )


def test_a_huge_png_is_refused_with_its_real_size(tmp_path: Path) -> None:
    """20000x20000 px: too large for ffmpeg's decoder, which then reports a 0x0 stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)  # 8-bit RGB
    (tmp_path / "huge.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")
    )  # fmt: skip
    with pytest.raises(UnsupportedMediaError) as error:
        probe(tmp_path / "huge.png")
    assert _user_message(error, tmp_path).startswith(
        "huge.png: unsupported frame size 20000x20000 px (width and height must be 1 to 8192 px"
    )


def test_audio_only_file(tmp_path: Path) -> None:
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", str(tmp_path / "tone.m4a"))
    with pytest.raises(UnsupportedMediaError) as error:
        probe(tmp_path / "tone.m4a")
    assert _user_message(error, tmp_path) == "tone.m4a: contains only audio, no video stream"


# Inputs that would make ffmpeg open other files: each names a real file on the server.
OPENS_OTHER_FILES = {
    "hls": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n",
    "concat": "ffconcat version 1.0\nfile '{target}'\n",
}


@pytest.mark.parametrize("kind", sorted(OPENS_OTHER_FILES))
@pytest.mark.parametrize("name", ["x.mp4", "x.png", "x.bin"])
def test_a_file_that_names_other_files_is_refused(
    tmp_path: Path, clips: dict[str, Path], kind: str, name: str
) -> None:
    upload = tmp_path / name
    upload.write_text(OPENS_OTHER_FILES[kind].format(target=clips["mp4"]))
    with pytest.raises(UnsupportedMediaError) as error:
        probe(upload)
    message = _user_message(error, tmp_path)
    assert message.startswith(f"{name}: format '{kind}' is not accepted (accepted: MP4/MOV")
    assert str(clips["mp4"]) not in message


def test_a_format_outside_the_list_is_refused(tmp_path: Path) -> None:
    Image.new("RGB", (40, 30), (0, 0, 0)).save(tmp_path / "anim.gif")
    with pytest.raises(UnsupportedMediaError, match=r"^anim.gif: format 'gif' is not accepted"):
        probe(tmp_path / "anim.gif")


@pytest.mark.parametrize(
    ("suffix", "demuxer"),
    [("mp4", "mov"), ("mkv", "matroska"), ("avi", "avi"), ("ts", "mpegts"), ("h264", "h264"),
     ("png", "png_pipe"), ("jpg", "jpeg_pipe"), ("webp", "webp_pipe")],
)  # fmt: skip
def test_accepted_formats_decode_with_their_demuxer(
    tmp_path: Path, clips: dict[str, Path], suffix: str, demuxer: str
) -> None:
    path = tmp_path / f"in.{suffix}"
    if demuxer.endswith("_pipe"):
        Image.new("RGB", (40, 30), (200, 10, 10)).save(path)
    else:
        _ffmpeg("-i", str(clips["mp4"]), "-t", "1", "-c:v", "libx264", str(path))
    info = probe(path)
    assert info.demuxer == demuxer
    assert len(list(iter_frames(info, sample_fps=None))) == (1 if info.kind == "image" else 10)


def test_errors_name_the_file_as_the_user_knows_it(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    """An upload is stored as <uuid>.mp4; its errors must say the name it was uploaded as."""
    stored = tmp_path / "55d7c0ffee0123456789abcdef012345.mp4"
    make_truncated_copy(clips["mp4"], stored, 0.6)
    info = probe(stored, "entrance.mp4")
    with pytest.raises(DecodeError) as error:
        list(iter_frames(info, sample_fps=2))
    message = _user_message(error, tmp_path)
    assert message.startswith("entrance.mp4: the file is truncated or corrupt (")
    assert "55d7" not in message

    notes = tmp_path / "0123456789abcdef0123456789abcdef.mp4"
    notes.write_text("meeting notes\n")
    with pytest.raises(DecodeError) as error:
        probe(notes, "entrance.mp4")
    assert _user_message(error, tmp_path).startswith("entrance.mp4: not a readable video")
    assert "0123" not in str(error.value)


def test_input_errors_are_input_errors() -> None:
    assert issubclass(DecodeError, InputError) and issubclass(UnsupportedMediaError, InputError)


# ----------------------------------------------------------------- process hygiene


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_breaking_out_early_leaves_no_ffmpeg_process(clips: dict[str, Path]) -> None:
    info = probe(clips["mp4"])
    assert _ffmpeg_children() == []

    for _ in iter_frames(info, sample_fps=None):
        assert _ffmpeg_children(), "ffmpeg is running while frames stream"
        break
    assert _ffmpeg_children() == []

    frames = iter_frames(info, sample_fps=None)
    next(frames)
    frames.close()
    assert _ffmpeg_children() == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_ffmpeg_is_a_fault_not_bad_input(clips: dict[str, Path]) -> None:
    info = probe(clips["mp4"])
    frames = iter_frames(info, sample_fps=None)
    next(frames)
    (pid,) = _ffmpeg_children()
    os.kill(pid, signal.SIGKILL)  # as the OOM killer does
    with pytest.raises(DecoderKilled, match=r"^clip.mp4: ffmpeg was killed by SIGKILL$") as error:
        list(frames)
    assert not isinstance(error.value, InputError), "a fault must be retried, not failed"
    assert _ffmpeg_children() == []

    # The same file still decodes in full: the file was never the problem.
    assert len(list(iter_frames(info, sample_fps=None))) == 80


@pytest.mark.parametrize("container", ["mp4", "ts", "ntsc"])
@pytest.mark.parametrize("sample_fps", [2.0, 3.0, None])
def test_the_planning_timeline_counts_the_frames_decoding_yields(
    clips: dict[str, Path], container: str, sample_fps: float | None
) -> None:
    """The timeline's ffprobe reads the file with the probed demuxer (-f) under the same
    whitelists as decoding, and picks samples by the same rule."""
    info = probe(clips[container])
    timeline = read_timeline(info, sample_fps=sample_fps or 1000.0, bucket_s=1.0, max_frames=10_000)
    assert timeline is not None
    assert timeline.samples == len(_decode(clips[container], sample_fps=sample_fps))


def test_a_killed_ffprobe_while_planning_is_a_fault_not_bad_input(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    info = probe(clips["mp4"])
    # Injected: a stand-in for ffprobe that the OOM killer takes, as it takes ffprobe.
    monkeypatch.setattr(timeline_module, "build_timeline_args", lambda _info: [
        "sh", "-c", "kill -KILL $$"
    ])  # fmt: skip
    with pytest.raises(DecoderKilled, match=r"^clip.mp4: ffprobe was killed by SIGKILL$"):
        read_timeline(info, sample_fps=2.0, bucket_s=1.0, max_frames=1000)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_timeout_stops_ffmpeg(clips: dict[str, Path]) -> None:
    info = probe(clips["mp4"])
    with pytest.raises(TimeoutError, match=r"^clip.mp4: decoding took longer than 0.3 s$"):
        for _ in iter_frames(info, sample_fps=None, timeout_s=0.3):
            time.sleep(0.2)  # a slow consumer: the budget covers the whole iteration
    assert _ffmpeg_children() == []
