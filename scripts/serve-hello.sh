#!/usr/bin/env bash
# Serves examples/hello.wsgi through Apache (embedded mode) on 127.0.0.1:8000, in the foreground,
# with this project's mod_wsgi-express (src/bin/mod_wsgi-express). Ctrl-C stops Apache and every
# process it started. PORT=8080 picks another port.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# hello.wsgi needs no packages: an active virtualenv (perhaps of another Python) is not used.
unset VIRTUAL_ENV
# The program replaces this shell, so Ctrl-C (or a SIGINT/SIGTERM sent to this script's pid)
# reaches it directly. As root it runs Apache's children as www-data (its default --user).
exec target/release/mod_wsgi-express start-server examples/hello.wsgi --embedded-mode \
    --host 127.0.0.1 --port "${PORT:-8000}"
