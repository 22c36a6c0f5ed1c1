#!/usr/bin/env bash
# Installs what `make test` needs when it is missing, so that the tests run on
# a fresh Debian machine: PostgreSQL 15's server binaries (internal/tools/pgtest
# starts throwaway clusters from them), Node.js with npm, and the npm packages
# and Go commands the tests pin (npm_pinned and go_tool below). Tests never skip for a missing tool:
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

# npm_pinned DIR installs the npm packages pinned by DIR/package.json and
# DIR/package-lock.json into the user cache, in a folder named after DIR's
# base name and its lock file's hash (internal/tools/testdeps.NodeModules
# computes the same name), so it is installed once per lock file and a
# changed pin gets a fresh folder. npm ci installs exactly the lock file's
# versions, without install scripts; it runs in a temporary folder that is
# renamed when complete, so an interrupted install is never taken for a
# finished one.
npm_pinned() {
	local dir=$1 sum dest tmp
	sum=$(sha256sum "$dir/package-lock.json" | cut -c1-12)
	dest="${XDG_CACHE_HOME:-$HOME/.cache}/lakelink/npm/$(basename "$dir")-$sum"
	[[ -f "$dest/.complete" ]] && return 0
	echo "test-deps: installing the npm packages of $dir into $dest" >&2
	mkdir -p "$(dirname "$dest")"
	tmp=$(mktemp -d "$dest.tmp.XXXXXX")
	cp "$dir/package.json" "$dir/package-lock.json" "$tmp/"
	if ! (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
		rm -rf "$tmp"
		return 1
	fi
	touch "$tmp/.complete"
	rm -rf "$dest"
	mv "$tmp" "$dest"
}

# go_tool PKG@VERSION installs a pinned Go command into .tools/bin of the
# repository (internal/tools/testdeps.Bin finds it there), unless the binary
# there was already built from that version.
go_tool() {
	local pkg=${1%@*} version=${1##*@} bin
	bin="$PWD/.tools/bin/$(basename "$pkg")"
	if [[ -x "$bin" ]] && go version -m "$bin" 2>/dev/null | grep -q "[[:space:]]$version[[:space:]]"; then
		return 0
	fi
	echo "test-deps: installing $1 into .tools/bin" >&2
	GOBIN="$PWD/.tools/bin" go install "$1"
}

# The emulator's TestWebAPIClient runs the npm client dynamics-web-api.
npm_pinned internal/tools/emulator/testdata/webapi

# The Delta format's independent-reader test reads its Parquet files with hyparquet.
npm_pinned internal/lake/delta/testdata/hyparquet

# internal/tools/azuritetest starts the Azure Blob emulator Azurite.
npm_pinned internal/tools/azuritetest/testdata/azurite
