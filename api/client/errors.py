"""Exit codes and the one error type every client failure becomes (printed as one `pvem: ` line)."""

from __future__ import annotations

OK = 0
CHANGES = 1  # `diff` found differences, or an object failed to converge under --wait
USAGE = 2  # bad flags, unreadable file, invalid YAML, manifest rejected as invalid (400/413/415)
UNAVAILABLE = 3  # server unreachable, not logged in, token rejected, 403/404/409/5xx
TIMEOUT = 4  # --wait timed out
INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """A failure to report as one line on stderr, with the exit code it maps to."""

    def __init__(self, message: str, exit_code: int = UNAVAILABLE) -> None:
        super().__init__(one_line(message))
        self.message = one_line(message)
        self.exit_code = exit_code


class UsageError(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) so a message never spans lines."""
    return " ".join(str(text).split())
