"""Pipeline errors: bad input, which is never retried, and decoder faults, which are."""


class InputError(Exception):
    """The input cannot be analysed; retrying will not help.

    The message is shown to users as the job's failure reason: it names the file by its base
    name only (never a server path) and says what is wrong with it.
    """


class UnsupportedMediaError(InputError):
    """The file is readable but is not media we analyse (no video stream, absurd size...)."""


class DecodeError(InputError):
    """The file could not be decoded: not media at all, truncated or corrupt."""


class DecoderKilled(Exception):
    """ffmpeg or ffprobe died by a signal (the OOM killer, an operator): a fault of the
    machine, not a property of the file, so the work is retried like any transient fault.

    Only ffmpeg's own verdict on the data (an exit status, an error it printed) is an
    InputError.
    """
