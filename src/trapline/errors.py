"""Exceptions with messages meant for the astronomer reading the log."""


class TraplineError(Exception):
    """Base class of every error Trapline raises on purpose."""


class ImageError(TraplineError):
    """An image cannot be used: unreadable, no WCS, no beam, no valid pixels...

    ``reason`` is a short machine-friendly code (``corrupt``, ``no_wcs``, ``no_beam``,
    ``no_data``, ...) stored with the image's rejection; the message explains it.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class ConfigError(TraplineError):
    """The configuration is invalid; the message names the option."""


def install_hint(what: str, extra: str, exc: ImportError) -> str:
    """The one-line message for an optional package that is not installed: what needs
    it, the missing module, and the pip command installing pyproject's ``extra``."""
    return f"{what} needs extra packages ({exc.name} is missing): pip install 'trapline[{extra}]'"
