"""Where the agent's own log lines go, through Python's `logging`.

    configure_agent_logging("info", log_file=None)            # once, at agent start
    logging.getLogger(__name__).warning("%s: ...", run_id)    # in every module

- Under systemd (`JOURNAL_STREAM` names the stream that stderr is): one line per record on
  stderr, led by the sd-daemon priority (`<3>` error, `<4>` warning, `<6>` info, `<7>`
  debug), so `journalctl -u jobrunner-agent -p warning` shows warnings and worse.
- Elsewhere on stderr: `time level logger: message`, one line per record.
- With `log_file` (a local pool's agents): that file, rotated at `MAX_LOG_BYTES` with
  `LOG_BACKUPS` old files kept, readable by its owner only (0600); stderr too only where it is
  a terminal or the journal.

The level applies to jobrunner's own loggers; every other library's (the Azure SDK's) stays
at warning, since at debug they would print request details. Every line passes through the
store's redaction (account keys, SAS tokens, URL query strings) and is cut at
`MAX_RECORD_CHARS`, so a job's 10 MB stderr line in a reason does not become a 10 MB record.

Calling it again replaces what an earlier call installed (tests, a reread config). Failure
modes: ConfigError for a level that is not one of `LEVELS` (naming `--log-level`, `logLevel`
and the choices) or a log file that cannot be opened.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import re
import sys
from pathlib import Path
from typing import IO, Any, Literal

from jobrunner.errors import ConfigError
from jobrunner.node.isolation import redact_store

LogLevel = Literal["debug", "info", "warning", "error"]
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
DEFAULT_LEVEL: LogLevel = "info"
MAX_LOG_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
MAX_RECORD_CHARS = 16_000  # journald splits lines past 48 KiB; a record that long is a bug's
OWN_LOGGER = "jobrunner"
# sd-daemon(3) priorities: what journald files a line under when the line starts with one
_JOURNAL_PRIORITY = ((logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_SIG = re.compile(r"(?i)\b(sig)=[^&\s'\"]+")
_MARK = "_jobrunner_agent_handler"  # set on the handlers this module installs

log = logging.getLogger(__name__)


def parse_level(level: str) -> int:
    """The `logging` level of a level name (any case). ConfigError naming the choices."""
    value = LEVELS.get(level.strip().lower())
    if value is None:
        raise ConfigError(
            f"--log-level (logLevel in an agent config) {level!r} is not a log level",
            fix="use one of " + ", ".join(LEVELS),
        )
    return value


def journal_priority(levelno: int) -> int:
    """The sd-daemon priority of a `logging` level (critical is 2, below debug is 7)."""
    if levelno >= logging.CRITICAL:
        return 2
    return next((prio for at_least, prio in _JOURNAL_PRIORITY if levelno >= at_least), 7)


def redact(text: str) -> str:
    """`text` as a log line may show it: no account key, no SAS signature, no URL query."""
    return _SIG.sub(lambda m: f"{m.group(1)}=[redacted]", redact_store(text))


def _bounded(text: str) -> str:
    if len(text) <= MAX_RECORD_CHARS:
        return text
    return f"{text[:MAX_RECORD_CHARS]}... ({len(text) - MAX_RECORD_CHARS} more characters)"


class ReadableFormatter(logging.Formatter):
    """`2026-12-02 01:02:03,456 WARNING jobrunner.store.client: message`, redacted and bounded."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return _bounded(redact(super().format(record)))


class JournalFormatter(logging.Formatter):
    """`<4>jobrunner.store.client: message`: the priority journald reads, the rest on one line (a
    traceback's newlines written as `\\n`), since journald makes each line an entry of its own."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = _bounded(redact(super().format(record)))
        return f"<{journal_priority(record.levelno)}>" + text.replace("\r", "").replace("\n", "\\n")


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are created 0600 (they name runs, paths, hosts),
    whatever the umask; an older file keeps no wider mode."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def file_handler(
    path: Path, *, max_bytes: int = MAX_LOG_BYTES, backups: int = LOG_BACKUPS
) -> logging.Handler:
    """The handler of an agent's log file: readable lines, `backups` old files of `max_bytes`.
    OSError when the file cannot be opened."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = PrivateRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(ReadableFormatter())
    return handler


def stderr_is_journal(stream: IO[Any] | None = None) -> bool:
    """Whether `stream` (stderr) is the journal: `JOURNAL_STREAM` holds `<device>:<inode>` of
    the stream systemd connected, which a redirect by hand no longer matches."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


def configure_agent_logging(level: str, *, log_file: Path | None) -> None:
    """Send the agent's records where an operator looks (module docstring) at `level`.

    Raises ConfigError, before anything changes, for an unknown level or a `log_file` that
    cannot be opened.
    """
    wanted = parse_level(level)
    stream = sys.stderr
    journal = stderr_is_journal(stream)
    handlers: list[logging.Handler] = []
    where: list[str] = []
    if log_file is not None:
        try:
            handlers.append(file_handler(log_file))
        except OSError as exc:
            raise ConfigError(
                f"--log-file {log_file}: cannot be opened: {exc.strerror or exc}",
                fix="name a file in a folder this user can write",
            ) from None
        where.append(str(log_file))
    if log_file is None or journal or _isatty(stream):
        to_stderr = logging.StreamHandler(stream)
        to_stderr.setFormatter(JournalFormatter() if journal else ReadableFormatter())
        handlers.append(to_stderr)
        where.append("the journal" if journal else "stderr")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(max(logging.WARNING, wanted))  # other libraries: warnings and worse
    logging.getLogger(OWN_LOGGER).setLevel(wanted)
    log.info("agent log at level %s to %s (pid %d)", level.strip().lower(), " and ".join(where), os.getpid())
