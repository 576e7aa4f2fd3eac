#!/usr/bin/env bash
# Refuse the job user every packet to the instance metadata service, 169.254.169.254: it hands
# out the node identity's tokens. Jobs share the host network (NCCL, rendezvous), containers
# included (`docker run --network host --user`), so the rule matches the sending user.
# Idempotent: run by the agent's unit before each start (ExecStartPre).
#
#   guard-metadata.sh [USER]       (default: trainstack-job)
set -euo pipefail
user="${1:-trainstack-job}"
rule=(OUTPUT -d 169.254.169.254 -m owner --uid-owner "$user" -j REJECT)
iptables -C "${rule[@]}" 2>/dev/null || iptables -I "${rule[@]}"
