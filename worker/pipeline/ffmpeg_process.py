"""Running ffprobe and ffmpeg: the process driver that streams frames, and its error text.

``FfmpegRun`` is one ffmpeg process writing raw frames to a pipe and their timestamps to a
side pipe, under a wall-clock watchdog; it is always stopped and reaped. Failures become
the pipeline's errors with ffmpeg's reason, cleaned of server paths, naming the user's file:
a signal is ``DecoderKilled`` (a fault, retried), anything else ffmpeg said about the data
is ``DecodeError`` (bad input).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import IO

import numpy as np

from worker.pipeline.errors import DecodeError, DecoderKilled
from worker.pipeline.ffmpeg_args import input_url
from worker.pipeline.media import MediaInfo

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 2.0  # how long ffmpeg gets to exit after SIGTERM before SIGKILL
_PIPE_SIZE = 1 << 20  # Linux pipe buffer for the frame pipe (fewer wake-ups per frame)
# ffmpeg stderr phrases (lower case) that mean frames were lost: the file is truncated or
# corrupt. Other error lines (e.g. h264 "mmco: unref short failure" after a seek) are logged.
_DATA_LOSS_MARKERS = (
    "partial file",
    "ended prematurely",
    "invalid data found",
    "corrupt",
    "error while decoding",
    "truncat",
    "end of file",
)
_LOG_PREFIX = re.compile(r"^\[[^\]]*@ ?0x[0-9a-f]+\]\s*")


class FfmpegRun:
    """One ffmpeg process: frames on stdout, frame times on a side pipe, stderr kept."""

    def __init__(
        self,
        args_for: Callable[[int | None], list[str]],
        info: MediaInfo,
        *,
        with_pts: bool,
        deadline: float | None,
        timeout_s: float | None,
    ) -> None:
        self.path = info.path
        self.name = info.name
        self.partial = False
        pts_read, pts_write = os.pipe() if with_pts else (None, None)
        args = args_for(pts_write)
        logger.debug("running %s", args)
        try:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                pass_fds=() if pts_write is None else (pts_write,),
            )
        except BaseException:
            if pts_read is not None:
                os.close(pts_read)
            raise
        finally:
            if pts_write is not None:
                os.close(pts_write)  # ffmpeg holds the only write end: EOF when it exits
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout: IO[bytes] = self.proc.stdout
        _grow_pipe(self.stdout)
        self.times = None if pts_read is None else _FrameTimes(pts_read)
        self.stderr = _StderrTail(self.proc.stderr)
        self.watchdog = _Watchdog(
            self.proc, deadline, f"{self.name}: decoding took longer than {timeout_s or 0:g} s"
        )

    def read_frame(self, width: int, height: int) -> np.ndarray | None:
        """The next (H, W, 3) frame, or None at the end of the stream."""
        self.watchdog.check()
        image = np.empty((height, width, 3), np.uint8)
        got = _read_into(self.stdout, image.data.cast("B"))
        if got == image.nbytes:
            return image
        self.partial = got > 0
        return None

    def next_time(self) -> Fraction | None:
        """Absolute time of the next frame ffmpeg reported, or None when it reports no more."""
        return None if self.times is None else self.times.next()

    def finish(self) -> None:
        """Wait for ffmpeg to exit; raise if it failed, timed out or lost data."""
        try:
            rc = self.proc.wait(timeout=self.watchdog.remaining())
        except subprocess.TimeoutExpired:
            self.watchdog.expire()
            rc = -1
        self.stderr.join()
        self.watchdog.check()
        _raise_on_failure(self.path, self.name, rc, self.partial, list(self.stderr.lines))

    def close(self) -> None:
        self.watchdog.cancel()
        _stop(self.proc)
        self.stderr.close()
        if self.times is not None:
            self.times.close()


def raise_if_killed(name: str, program: str, rc: int) -> None:
    """A negative status is the signal that ended the process (Popen's convention)."""
    if rc < 0:
        try:
            signal_name = signal.Signals(-rc).name
        except ValueError:
            signal_name = f"signal {-rc}"
        raise DecoderKilled(f"{name}: {program} was killed by {signal_name}")


def _raise_on_failure(
    path: Path, name: str, rc: int, partial: bool, stderr_lines: list[str]
) -> None:
    raise_if_killed(name, "ffmpeg", rc)
    if rc != 0:
        reason = short_reason(stderr_lines, path, name) or f"ffmpeg exit status {rc}"
        raise DecodeError(f"{name}: could not be decoded ({reason})")
    lost = [line for line in stderr_lines if any(m in line.lower() for m in _DATA_LOSS_MARKERS)]
    if partial or lost:
        reason = short_reason(lost, path, name) or "the stream ended in the middle of a frame"
        raise DecodeError(f"{name}: the file is truncated or corrupt ({reason})")
    for line in stderr_lines:
        logger.warning(
            "ffmpeg reported while decoding %s: %s", name, _clean_line(line, path, name)
        )


def _read_into(stream: IO[bytes], buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; fewer bytes only at end of stream."""
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not got:
            break
        filled += got
    return filled


def _grow_pipe(stream: IO[bytes]) -> None:
    with contextlib.suppress(ImportError, AttributeError, OSError):  # Linux only; optional
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = _STOP_GRACE_S) -> None:
    """SIGTERM ``proc`` if it still runs, SIGKILL it after ``grace_s`` seconds; reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %d) ignored SIGTERM; killing it", proc.args, proc.pid)
            proc.kill()
            proc.wait()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill, ffmpeg; always reap it."""
    if proc.stdout is not None:
        # Closing our end first makes an ffmpeg blocked on a full pipe fail at once (EPIPE).
        proc.stdout.close()
    stop_process(proc)


class _Watchdog:
    """Stops the process when the wall-clock deadline passes."""

    def __init__(self, proc: subprocess.Popen[bytes], deadline: float | None, message: str) -> None:
        self._proc = proc
        self._deadline = deadline
        self._message = message
        self._expired = threading.Event()
        self._timer: threading.Timer | None = None
        if deadline is not None:
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.expire)
            self._timer.daemon = True
            self._timer.start()

    def expire(self) -> None:
        self._expired.set()
        stop_process(self._proc)

    def remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def check(self) -> None:
        if self._expired.is_set():
            raise TimeoutError(self._message)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _FrameTimes:
    """Reads ffmpeg's framecrc lines in a thread: the absolute time of each reported frame."""

    def __init__(self, fd: int) -> None:
        self._stream = os.fdopen(fd, "rb")
        self._times: queue.SimpleQueue[Fraction | None] = queue.SimpleQueue()
        self._ended = False
        self._thread = threading.Thread(target=self._read, name="ffmpeg-pts", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        time_base: Fraction | None = None
        try:
            for raw in self._stream:
                line = raw.decode("ascii", "replace").strip()
                if line.startswith("#tb 0:"):
                    time_base = Fraction(line.split(":", 1)[1].strip())
                elif line and not line.startswith("#") and time_base is not None:
                    # stream_index, dts, pts, duration, size, checksum
                    self._times.put(int(line.split(",")[2]) * time_base)
        except (OSError, ValueError) as exc:
            logger.debug("stopped reading frame times: %s", exc)
        finally:
            self._times.put(None)

    def next(self) -> Fraction | None:
        if self._ended:
            return None
        item = self._times.get()
        self._ended = item is None
        return item

    def close(self) -> None:
        self._thread.join(timeout=_STOP_GRACE_S)
        if not self._thread.is_alive():
            self._stream.close()


class _StderrTail:
    """Drains a process's stderr in a thread, keeping the last lines for error messages."""

    def __init__(self, stream: IO[bytes], keep: int = 40) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self._stream = stream
        self._thread = threading.Thread(
            target=self._drain, args=(stream,), name="ffmpeg-stderr", daemon=True
        )
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for raw in stream:
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    self.lines.append(line)
                    logger.debug("ffmpeg: %s", line)

    def join(self) -> None:
        self._thread.join(timeout=_STOP_GRACE_S)

    def close(self) -> None:
        self.join()
        if not self._thread.is_alive():
            self._stream.close()


def run_command(args: list[str], timeout_s: float, *, what: str) -> tuple[int, str, str]:
    """Run a short command to completion: (exit status, stdout, stderr)."""
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.communicate(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise TimeoutError(f"{what} took longer than {timeout_s:g} s") from None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _clean_line(line: str, path: Path, name: str) -> str:
    """An ffmpeg log line without its ``[demuxer @ 0x...]`` prefix, any server path or
    stored name replaced by ``name``."""
    line = _LOG_PREFIX.sub("", line.strip())
    for spelled in sorted(
        {input_url(path), str(path.absolute()), str(path), str(path.resolve()), path.name},
        key=len,
    )[::-1]:
        line = line.replace(spelled, name)
    return line


def short_reason(lines: list[str], path: Path, name: str, limit: int = 3) -> str:
    """A few distinct, path-free ffmpeg messages joined for a user-facing error."""
    reasons: list[str] = []
    for line in lines:
        cleaned = _clean_line(line, path, name)
        if cleaned.startswith(f"{name}: "):
            cleaned = cleaned[len(name) + 2 :]
        if cleaned and cleaned not in reasons and cleaned != "Conversion failed!":
            reasons.append(cleaned)
    text = "; ".join(reasons[:limit])
    return text if len(text) <= 200 else text[:197] + "..."
