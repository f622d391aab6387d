# mailwall: build, test, lint, fuzz, bench.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME ?= 30s

.PHONY: build test check fuzz bench bench-policy clean

build:
	$(GO) build -o mailwall ./cmd/mailwall

# The README's test command. MAILWALL_E2E=1 makes the Postfix end-to-end
# test fail, not skip, when Postfix is missing.
test:
	MAILWALL_E2E=1 $(GO) test -count=1 ./...

check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Every parser's fuzz target, FUZZTIME each.
fuzz:
	$(GO) test ./internal/spf -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/spf -run '^$$' -fuzz '^FuzzExplanation$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/policyd -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/labdns -run '^$$' -fuzz '^FuzzParseZoneFile$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/dnsx -run '^$$' -fuzz '^FuzzTXTEscapes$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/dkim -run '^$$' -fuzz '^FuzzParseSignature$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/dkim -run '^$$' -fuzz '^FuzzParseKey$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/dkim -run '^$$' -fuzz '^FuzzBodyCanonicalization$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/dkim -run '^$$' -fuzz '^FuzzReadHeader$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/lab -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/arc -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/phish -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/authres -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/dmarc -run '^$$' -fuzz '^FuzzParseRecord$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/conncheck -run '^$$' -fuzz '^FuzzRegexpTable$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/milter -run '^$$' -fuzz '^FuzzSession$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/feedback -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/feedback -run '^$$' -fuzz '^FuzzAttachments$$' -fuzztime $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# Side by side with postfix-policyd-spf-python (apt-get install postfix-policyd-spf-python).
bench-policy:
	$(GO) run ./bench/policy -n 16000 -c 8 -pin

clean:
	rm -f mailwall
