"""What keeps a job from reaching past its own run: the environment its processes get, the
user they run as, and the folders they may write.

- Environment (`job_environment`): a job's processes see the plan's variables (the job file's
  `environment_variables` and what the pool sets: ranks, addresses, folders) and, of the
  agent's own environment, only the names in `INHERITED` (locale, `PATH`, GPU and
  interconnect settings). Never `JOBRUNNER_*`, `AZURE_*`, `AZURITE_*`, `MSI_*`/`IDENTITY_*`
  or a value holding an account key or SAS signature: an agent's store credential stays with
  the agent, on a pool node and on a local pool alike.
- User (`JobUser`): on a pool node the agent runs as root and its jobs as the unprivileged
  user the image creates (`jobUser` in the agent config, `trainstack-job` on a baked image),
  on the node and inside containers (`docker run --user`). The image's firewall rule refuses
  that user any packet to the instance metadata service (169.254.169.254), so a job cannot
  get a token for the node's identity. `hand_over` gives that user the attempt's writable
  folders, never the attempt's root (the agent's log spool stays out of its reach), and the
  agent opens what it writes or reads in those folders without following links
  (`open_no_follow`): a job's link must not make root write or read elsewhere.
- Folders (`confined`): every path the agent makes for a job is normalised and refused when it
  leaves the attempt's root.
"""

from __future__ import annotations

import os
import posixpath
import pwd
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jobrunner.errors import LaunchError

METADATA_ADDRESS = "169.254.169.254"  # Azure IMDS: identity tokens, Scheduled Events
IMAGE_JOB_USER = "trainstack-job"  # created by packaging/install-agent.sh
# Names a job inherits from the agent's environment (exact names, and prefixes ending in `_`).
INHERITED = frozenset(
    {
        "PATH", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
        "LD_LIBRARY_PATH", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
        "no_proxy", "DOCKER_HOST", "LC_", "CUDA_", "NVIDIA_", "NCCL_", "UCX_", "OMPI_MCA_",
    }
)  # fmt: skip
# Never passed on from the agent, whatever the allow-list says.
_REFUSED_NAME = re.compile(r"^(JOBRUNNER_|AZURE_|AZURITE_|MSI_|IDENTITY_)|CONNECTION_STRING|ACCOUNT_KEY")
# An account key or SAS signature in a value (`AccountKey=...`, `...&sig=...`).
_SECRET_VALUE = re.compile(r"(?i)(AccountKey=|SharedAccessSignature=|[?&]sig=)")
# https://user:password@proxy: the credentials of a proxy URL stay with the agent too.
_URL_CREDENTIALS = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def inherited(name: str) -> bool:
    """Whether a variable of the agent's environment may reach a job."""
    if _REFUSED_NAME.search(name):
        return False
    return name in INHERITED or any(p.endswith("_") and name.startswith(p) for p in INHERITED)


def job_environment(
    agent_env: Mapping[str, str], plan_env: Mapping[str, str], *, user: JobUser | None = None
) -> dict[str, str]:
    """The environment of one job process: the inherited part of `agent_env`, then the plan's
    variables on top; `HOME`, `USER` and `LOGNAME` of `user` when it runs as one."""
    env = {
        k: v
        for k, v in agent_env.items()
        if inherited(k) and not _SECRET_VALUE.search(v) and not _URL_CREDENTIALS.match(v)
    }
    if user is not None:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    elif "HOME" in agent_env:
        env["HOME"] = agent_env["HOME"]
    env.update(plan_env)
    return env


@dataclass(frozen=True)
class JobUser:
    """The unprivileged user a node runs its jobs as."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def resolve(cls, name: str) -> JobUser:
        """The user `name` of this machine. LaunchError when it does not exist, is root, or
        the agent is not root (only root can start processes as another user)."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise LaunchError(
                f"job user {name!r} does not exist on this node",
                fix="bake the image with packaging/install-agent.sh (it creates it) or set jobUser: null",
            ) from None
        if entry.pw_uid == 0:
            raise LaunchError(f"job user {name!r} is root", fix="name an unprivileged user in jobUser")
        if os.geteuid() != 0:
            raise LaunchError(
                f"the agent runs as uid {os.geteuid()}, not root, so it cannot start jobs as {name!r}",
                fix="run the agent as root (the image's unit does) or set jobUser: null",
            )
        return cls(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    def docker_user(self) -> str:
        return f"{self.uid}:{self.gid}"


def hand_over(user: JobUser, writable: Iterable[str]) -> None:
    """Give `user` everything under `writable` (the attempt's code, outputs, temp and mounts),
    so the job can write there and nowhere else the agent owns. Links are changed, never
    followed. LaunchError when a folder cannot be changed."""
    try:
        for top in writable:
            if not Path(top).exists():
                continue
            os.chown(top, user.uid, user.gid, follow_symlinks=False)
            for dirpath, dirnames, filenames in os.walk(top):
                for entry in (*dirnames, *filenames):
                    os.chown(os.path.join(dirpath, entry), user.uid, user.gid, follow_symlinks=False)
    except OSError as exc:
        raise LaunchError(f"cannot hand the attempt's folders to {user.name}: {exc}") from None


def confined(root: str | Path, *parts: str, what: str = "path") -> str:
    """`root/parts...`, normalised; LaunchError when it is not inside `root` (an absolute part,
    or `..` that climbs out). `what` names the path in the error."""
    base = posixpath.normpath(str(root))
    joined = posixpath.normpath(posixpath.join(base, *parts))
    if joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise LaunchError(
            f"{what} {posixpath.join(*parts) if parts else ''!r} leads outside the attempt's folder {base}",
            fix="use a name of letters, digits, `_`, `.` and `-`, and datastore paths without `..`",
        )
    return joined


_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"]*)\?[^\s#'\"]*", re.IGNORECASE)
_SECRET_PARTS = re.compile(r"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;]*")


def without_query(text: str) -> str:
    """`text` with every URL's query string dropped (a SAS token is one)."""
    return _QUERY.sub(lambda m: m.group(1), text)


def redact_store(target: str) -> str:
    """A store target as people and logs may see it: a connection string without its account
    key or SAS, a URL without its query."""
    return without_query(_SECRET_PARTS.sub(lambda m: f"{m.group(1)}=[redacted]", target))


def open_no_follow(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """`os.open` that refuses a link as the last part of `path` (OSError ELOOP): for the files
    the agent, as root, writes into or reads from folders a job can write."""
    return os.open(path, flags | os.O_NOFOLLOW, mode)


def read_job_file(path: str | Path, limit: int = 1 << 20) -> str | None:
    """A small regular file a job wrote (up to `limit` bytes), or None when it is missing, a
    link, not a regular file or unreadable."""
    try:
        fd = open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(limit).decode("utf-8", "replace")
