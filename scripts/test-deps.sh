#!/usr/bin/env bash
# Installs what `make test` needs when it is missing, so that the tests run on
# a fresh Debian machine: PostgreSQL 15's server binaries (internal/pgtest
# starts throwaway clusters from them) and Node.js with npm (the emulator's
# client test runs the pinned npm package dynamics-web-api). Tests never skip
# for a missing tool: they fail with what to install, and this script is
# what installs it.
set -euo pipefail

pg_bindir="${PGTEST_BINDIR:-/usr/lib/postgresql/15/bin}"
missing=()
[[ -x "$pg_bindir/postgres" && -x "$pg_bindir/initdb" ]] || missing+=(postgresql postgresql-contrib)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if ((${#missing[@]} == 0)); then
	exit 0
fi
echo "test-deps: installing ${missing[*]} with apt-get" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
