#!/usr/bin/env bash
# Install the jobrunner agent on a GPU node image (Azure Image Builder's customize step).
#
#   sudo bash install-agent.sh WHEEL UNIT_FILE [JOB_PACKAGE...]
#
# 1. Docker and the NVIDIA container toolkit (skipped when already there, as on the HPC image),
# 2. a virtualenv at $JOBRUNNER_VENV (/opt/jobrunner/venv) with the wheel and its pinned deps
#    (and its extras in $JOBRUNNER_EXTRAS, e.g. `tracking`: the agent's MLflow client),
# 3. JOB_PACKAGE... into the node's own Python, for the jobs that run on the node (azureml-mlflow),
# 4. the unprivileged user jobs run as ($JOB_USER, trainstack-job) and the firewall guard that
#    refuses that user the instance metadata service (169.254.169.254: identity tokens),
# 5. the systemd unit, enabled; it starts at boot once custom data has written the config.
#
# Settings for other layouts and for tests: JOBRUNNER_VENV, JOBRUNNER_UNIT_DIR,
# JOBRUNNER_CONFIG_DIR, JOBRUNNER_GUARD_DIR, INSTALL_CONTAINER_RUNTIME=0 (skip step 1),
# CREATE_JOB_USER=0 (no user), PYTHON (the interpreter). guard-metadata.sh lies next to it.
set -euo pipefail
wheel="${1:?usage: install-agent.sh WHEEL UNIT_FILE}"
unit="${2:?usage: install-agent.sh WHEEL UNIT_FILE}"
venv="${JOBRUNNER_VENV:-/opt/jobrunner/venv}"
unit_dir="${JOBRUNNER_UNIT_DIR:-/etc/systemd/system}"
config_dir="${JOBRUNNER_CONFIG_DIR:-/etc/jobrunner}"
python="${PYTHON:-python3}"
job_user="${JOB_USER:-trainstack-job}"
guard="${GUARD_SCRIPT:-$(dirname "$0")/guard-metadata.sh}"
guard_dir="${JOBRUNNER_GUARD_DIR:-/usr/local/lib/jobrunner}"
log() { echo "install-agent: $*"; }

install_container_runtime() {
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v docker >/dev/null 2>&1; then
    log "installing Docker"
    apt-get update -q
    apt-get install -y -q docker.io
  fi
  if ! command -v nvidia-ctk >/dev/null 2>&1; then
    log "installing the NVIDIA container toolkit"
    curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
      | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
    curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
      | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#' \
      > /etc/apt/sources.list.d/nvidia-container-toolkit.list
    apt-get update -q
    apt-get install -y -q nvidia-container-toolkit
  fi
  if ! command -v iptables >/dev/null 2>&1; then
    apt-get install -y -q iptables  # the metadata guard's firewall rule
  fi
  nvidia-ctk runtime configure --runtime=docker
  systemctl enable docker
}

if [ "${INSTALL_CONTAINER_RUNTIME:-1}" = 1 ]; then
  install_container_runtime
fi

log "creating $venv"
"$python" -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "$wheel${JOBRUNNER_EXTRAS:+[$JOBRUNNER_EXTRAS]}"
shift 2
if [ "$#" -gt 0 ]; then
  log "installing $* for the jobs"
  "$python" -m pip install --quiet "$@" || "$python" -m pip install --quiet --break-system-packages "$@"
fi
"$venv/bin/jobrunner" --help >/dev/null

if [ "${CREATE_JOB_USER:-1}" = 1 ]; then
  log "creating the job user $job_user"
  if ! id -u "$job_user" >/dev/null 2>&1; then
    useradd --system --create-home --shell /bin/bash --user-group "$job_user"
  fi
  # Containers run as this user too (docker run --user): the GPUs, not the docker socket.
  for group in video render; do
    if getent group "$group" >/dev/null; then usermod -aG "$group" "$job_user"; fi
  done
fi

log "installing the metadata guard into $guard_dir"
install -d -m 0755 "$guard_dir"
install -m 0755 "$guard" "$guard_dir/guard-metadata.sh"

log "installing the unit into $unit_dir"
install -d -m 0755 "$unit_dir" "$config_dir"
install -m 0644 "$unit" "$unit_dir/jobrunner-agent.service"
if [ -d /run/systemd/system ] && [ "$unit_dir" = /etc/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable jobrunner-agent.service
fi
log "done: $("$venv/bin/python" -c 'import importlib.metadata as m; print("jobrunner", m.version("jobrunner"))')"
