# make test runs every test: unit, golden layout, fuzz seeds, end to end and
# crash tests. The Postgres tests start their own throwaway cluster from the
# machine's PostgreSQL server binaries (internal/pgtest).
GO ?= go

.PHONY: test build vet fmt bench
test: vet
	$(GO) test -count=1 -timeout 60m ./...

build:
	$(GO) build -o bin/lakelink ./cmd/lakelink

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

bench: build
	./bin/lakelink bench
