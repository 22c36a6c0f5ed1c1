#!/usr/bin/env bash
# Installs what `make test` needs when it is missing, so that the tests run on
# a fresh Debian machine: PostgreSQL 15's server binaries (internal/tools/pgtest
# starts throwaway clusters from them), Node.js with npm, and the npm client
# dynamics-web-api pinned in internal/tools/emulator/testdata/webapi (the
# emulator's TestWebAPIClient runs it). Tests never skip for a missing tool:
# they fail with what to install, and this script is what installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bindir="${PGTEST_BINDIR:-/usr/lib/postgresql/15/bin}"
missing=()
[[ -x "$pg_bindir/postgres" && -x "$pg_bindir/initdb" ]] || missing+=(postgresql postgresql-contrib)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if ((${#missing[@]} > 0)); then
	echo "test-deps: installing ${missing[*]} with apt-get" >&2
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The npm client goes to the user cache, in a folder named after its lock
# file's hash (internal/tools/emulator/webapi_test.go computes the same name), so
# it is installed once per lock file and a changed pin gets a fresh folder.
# npm ci installs exactly the lock file's versions, without install scripts;
# it runs in a temporary folder that is renamed when complete, so an
# interrupted install is never taken for a finished one.
webapi=internal/tools/emulator/testdata/webapi
sum=$(sha256sum "$webapi/package-lock.json" | cut -c1-12)
dest="${XDG_CACHE_HOME:-$HOME/.cache}/lakelink/npm/webapi-$sum"
if [[ ! -f "$dest/node_modules/dynamics-web-api/package.json" ]]; then
	echo "test-deps: installing the npm packages of $webapi into $dest" >&2
	mkdir -p "$(dirname "$dest")"
	tmp=$(mktemp -d "$dest.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	cp "$webapi/package.json" "$webapi/package-lock.json" "$tmp/"
	(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
	rm -rf "$dest"
	mv "$tmp" "$dest"
	trap - EXIT
fi
