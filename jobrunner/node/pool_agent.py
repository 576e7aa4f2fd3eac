"""Starting an agent on a pool node from its config file (`jobrunner agent --config FILE`).

    node_setup_once(config)           # Batch AI's setup task: once per boot, before any job
    publish_pool_size(store, config)  # pools/<pool>/config.json, so submit refuses larger jobs
    Agent(store, agent_settings(config), facts=node_facts(config)).serve(stop)

Node setup runs under `bash -c` with its output appended to `<runDir>/node-setup.log` and
echoed to stderr (the journal). A marker `<runDir>/node-setup.done` holding the command's hash
keeps an agent restart from running it again; `runDir` is `/run/jobrunner`, a tmpfs that a
reboot (a Spot VM coming back after deallocation, say) empties, so setup runs again at boot,
as Batch AI's did. A failing or hanging setup raises `NodeSetupError`: the agent does not
take work on a node that is not set up, and systemd restarts it to try again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from jobrunner.api import NodeFacts
from jobrunner.errors import TrainstackError
from jobrunner.node.config import AgentConfig
from jobrunner.store.client import Store

if TYPE_CHECKING:
    from jobrunner.node.agent import AgentSettings

IDENTITY_ENV = "AZURE_CLIENT_ID"  # which user-assigned identity DefaultAzureCredential signs in with
SETUP_LOG = "node-setup.log"
SETUP_MARKER = "node-setup.done"

logger = logging.getLogger(__name__)


class NodeSetupError(TrainstackError):
    """The node setup command failed or ran past its timeout; the node takes no work."""


def setup_digest(command: str) -> str:
    return hashlib.sha256(command.encode()).hexdigest()


def node_setup_once(config: AgentConfig) -> bool:
    """Run the config's node setup unless it already ran on this boot; True when it ran now.

    Raises NodeSetupError when the command exits non-zero or passes `nodeSetupTimeoutS`
    (the marker is then not written, so the next start tries again).
    """
    if config.node_setup is None:
        logger.debug("node setup: none configured")
        return False
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / SETUP_MARKER
    digest = setup_digest(config.node_setup)
    if marker.exists() and marker.read_text(encoding="utf-8").strip() == digest:
        logger.info("node setup: already ran on this boot (%s)", marker)
        return False
    log_path = run_dir / SETUP_LOG
    logger.info("node setup: running (up to %d s, output in %s)", config.node_setup_timeout_s, log_path)
    with log_path.open("ab") as log:
        log.write(f"--- node setup {datetime.now(UTC).isoformat()}: {config.node_setup}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                ["bash", "-c", config.node_setup],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=run_dir,
                start_new_session=True,  # so that a timeout ends the command's children too
            )
        except OSError as exc:
            raise NodeSetupError(f"node setup could not start: {exc}", fix="install bash") from None
        with proc:
            code = _tee(proc, log, config.node_setup_timeout_s)
    if code == 0:
        logger.info("node setup: done")
    else:
        logger.error(
            "node setup: %s; no work is taken", "timed out" if code is None else f"exited with {code}"
        )
    if code is None:
        raise NodeSetupError(
            f"node setup ran past {config.node_setup_timeout_s} s and was stopped (log: {log_path})",
            fix="make it faster or raise nodeSetupTimeoutS",
        )
    if code != 0:
        raise NodeSetupError(
            f"node setup exited with {code} (log: {log_path})", fix="fix the nodeSetup command"
        )
    marker.write_text(digest + "\n", encoding="utf-8")
    return True


def _tee(proc: subprocess.Popen[bytes], log: IO[bytes], timeout_s: int) -> int | None:
    """Copy the command's output to the log and stderr; its exit code, or None on timeout."""

    def copy() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            sys.stderr.buffer.write(b"node-setup| " + line)
            sys.stderr.buffer.flush()

    reader = threading.Thread(target=copy, name="node-setup-output", daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(timeout=5)
        return None
    reader.join(timeout=5)
    return code


def connect_store(config: AgentConfig) -> Store:
    """The job store the config names, signing in as its user-assigned identity if it names one."""
    if config.identity_client_id:
        os.environ[IDENTITY_ENV] = config.identity_client_id
    store = Store.connect(config.store)
    signed_in = f"identity {config.identity_client_id}" if config.identity_client_id else "default sign-in"
    logger.info(
        "store: %s (%s)", store.description, signed_in if config.store_account else "connection string"
    )
    return store


def publish_pool_size(store: Store, config: AgentConfig, facts: NodeFacts | None = None) -> bool:
    """Record the pool's largest size, environments map and (from `facts`) whether its nodes
    run containers, for `submit`; False when the config does not say the size.

    Every node writes the same document, so the last writer wins with the same content.
    """
    if config.max_nodes is None:
        logger.info("pool %s: size not published (no maxNodes in the config)", config.pool)
        return False
    from jobrunner.store.pool_config import PoolConfig, read_pool_config, write_pool_config

    wanted = PoolConfig(
        name=config.pool, max_nodes=config.max_nodes, kind="vmss",
        containers=facts.container_runtime if facts else None, environments=config.environments,
    )  # fmt: skip
    if read_pool_config(store, config.pool) != wanted:
        write_pool_config(store, wanted)
        logger.info(
            "pool %s: published at most %d node(s), containers %s",
            config.pool,
            config.max_nodes,
            wanted.containers,
        )
    return True


def primary_address() -> str:
    """This host's address on its primary network (the one a default route leaves from).

    Connecting a UDP socket sends nothing; it only asks the kernel which source address it
    would use. Falls back to the host name's address, then loopback.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))
        return str(probe.getsockname()[0])
    except OSError:
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"
    finally:
        probe.close()


def node_facts(config: AgentConfig) -> NodeFacts:
    """This node's facts under the agent's name and address, with `gpus` from the config if set."""
    from jobrunner.node.facts import detect_node_facts

    facts = detect_node_facts(config.name or socket.gethostname(), config.address or primary_address())
    facts = replace(facts, environments=tuple(sorted(config.environments.items())))
    facts = facts if config.gpus is None else replace(facts, gpus=config.gpus)
    logger.info(
        "node %s at %s: %d GPU(s)%s, %d CPU(s), %s",
        facts.name, facts.address, facts.gpus, f" ({facts.gpu_model})" if facts.gpu_model else "", facts.cpus,
        "runs containers" if facts.container_runtime else "no container runtime",
    )  # fmt: skip
    return facts


def agent_settings(config: AgentConfig, *, source: str | None = None) -> AgentSettings:
    """The agent loop's settings (`jobrunner.node.agent.AgentSettings`) from the file's (`source`
    names the file in errors about its datastore map)."""
    from jobrunner.node.agent import AgentSettings
    from jobrunner.store.datastores import Datastores

    name = config.name or socket.gethostname()
    logger.info(
        "config %s: agent %s, pool %s, work dir %s, job user %s, scheduled events %s, tracking %s",
        source or "(given)", name, config.pool, config.work_dir, config.job_user or "the agent's own",
        config.scheduled_events_url or "not watched", config.tracking_uri or "none",
    )  # fmt: skip
    return AgentSettings(
        pool=config.pool,
        name=name,
        address=config.address or primary_address(),
        work_dir=Path(config.work_dir),
        scheduled_events_url=config.scheduled_events_url,
        datastores=Datastores.from_config(config, source=source),
        job_user=config.job_user,
        tracking_uri=config.tracking_uri,
    ).with_timings(heartbeat_s=config.heartbeat_s, stale_after_s=config.stale_after_s)
