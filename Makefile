# make test runs every test: unit, golden layout, fuzz seeds, end to end and
# crash tests. It first installs what the tests need when it is missing
# (scripts/test-deps.sh: Debian's postgresql, Node.js and npm, and the pinned npm
# client dynamics-web-api for the emulator's client test); the Postgres
# tests then start their own throwaway cluster from the machine's PostgreSQL
# server binaries (internal/tools/pgtest).
GO ?= go

.PHONY: test deps build vet fmt bench
test: deps vet
	$(GO) test -count=1 -timeout 60m ./...

deps:
	bash scripts/test-deps.sh

build:
	$(GO) build -o bin/lakelink ./cmd/lakelink

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

bench: build
	./bin/lakelink bench
