# The one test command of the README: installs what the tests need when it
# is missing, then runs every test with the race detector. .ci/run calls it.
GO ?= go
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: test deps vet build demo

test: deps vet
	@[ "$$(id -u)" -eq 0 ] || echo "make test: not root, so the tests that need root (loop devices, a throwaway sudo user, the end-to-end install) are skipped"
	BIGBANG_REQUIRE_TOOLS=1 $(GO) test -race -count=1 -timeout 20m ./...

deps:
	./scripts/test-deps.sh

vet:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...
	GO=$(GO) ./scripts/check-darwin.sh

build:
	$(GO) build -o bigbang .

demo:
	$(GO) run . demo
