#!/usr/bin/env bash
# The observability tests run a real Prometheus server and promtool (`promtool check rules`,
# `promtool test rules`, scrapes of the API and the worker): Debian's `prometheus` package
# ships both, from the package mirror alone.
set -euo pipefail
if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-prometheus.sh: /usr/bin/prometheus or /usr/bin/promtool is missing and there" \
        "is no apt-get; install the 'prometheus' package (server and promtool) from your" \
        "distribution (the observability tests need both)" >&2
    exit 2
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing Debian's prometheus (server and promtool) for the observability tests (apt-get)…" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
/usr/bin/promtool --version >&2
