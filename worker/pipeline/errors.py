"""Errors for input that is bad in itself and must never be retried."""


class InputError(Exception):
    """The input cannot be analysed; retrying will not help.

    The message is shown to users as the job's failure reason: it names the file by its base
    name only (never a server path) and says what is wrong with it.
    """


class UnsupportedMediaError(InputError):
    """The file is readable but is not media we analyse (no video stream, absurd size...)."""


class DecodeError(InputError):
    """The file could not be decoded: not media at all, truncated or corrupt."""
