"""moert's errors: one moert.Error subclass per moert_status."""
import builtins


class Error(Exception):
    """A moert call failed. ``status`` is the moert_status code, ``status_name`` its name."""

    status = None
    status_name = None

    def __init__(self, message="", status=None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message


class InvalidArgumentError(Error, ValueError):
    """A bad argument: bad token id, unknown option key, value out of range."""
    status, status_name = 1, "MOERT_ERR_INVALID_ARGUMENT"


class IoError(Error, OSError):
    """A file could not be opened, read or mapped."""
    status, status_name = 2, "MOERT_ERR_IO"

    def __init__(self, message="", status=None):
        Error.__init__(self, message, status)

    def __str__(self):
        return self.message


class FormatError(Error):
    """A malformed file (safetensors, config.json, tokenizer.json)."""
    status, status_name = 3, "MOERT_ERR_FORMAT"


class UnsupportedError(Error):
    """A valid but unsupported value (config field, device, chat template)."""
    status, status_name = 4, "MOERT_ERR_UNSUPPORTED"


class OutOfMemoryError(Error, MemoryError):
    """Memory or the KV-cache budget is exhausted."""
    status, status_name = 5, "MOERT_ERR_OUT_OF_MEMORY"


class DeviceError(Error):
    """A GPU error."""
    status, status_name = 6, "MOERT_ERR_DEVICE"


class CancelledError(Error):
    """Cancelled by the caller (e.g. a load whose progress callback returned True)."""
    status, status_name = 7, "MOERT_ERR_CANCELLED"


class InternalError(Error):
    """A bug in moert: please report it."""
    status, status_name = 8, "MOERT_ERR_INTERNAL"


class TimeoutError(Error, builtins.TimeoutError):
    """Nothing happened within the time given; try again."""
    status, status_name = 9, "MOERT_ERR_TIMEOUT"

    def __init__(self, message="", status=None):
        Error.__init__(self, message, status)

    def __str__(self):
        return self.message


class GenerationError(Error):
    """A stream finished with MOERT_FINISH_ERROR (it failed alone, e.g. the KV-cache budget)."""


_BY_STATUS = {c.status: c for c in (InvalidArgumentError, IoError, FormatError, UnsupportedError,
                                     OutOfMemoryError, DeviceError, CancelledError, InternalError, TimeoutError)}


def error_for(status, message):
    """The exception for a status (called by the native module)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        return Error(message, status)
    return cls(message)
