# mailwall: build, test, lint, fuzz, bench.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME ?= 30s

.PHONY: build test check fuzz bench bench-policy bench-peers package clean model

build:
	$(GO) build -o mailwall ./cmd/mailwall

# The README's test command. MAILWALL_E2E=1 makes the Postfix end-to-end
# test fail, not skip, when Postfix is missing.
test:
	MAILWALL_E2E=1 $(GO) test -count=1 ./...

# What make test needs, on a test machine, never a mail server (as root:
# the Debian packages of the e2e tests and peers, and a clean Debian root
# for the package test). .ci/run runs the same script.
.PHONY: test-deps
test-deps:
	bash .ci/test-deps

check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Every parser's fuzz target, FUZZTIME each. The inputs the fuzzer found
# interesting are kept in the package's testdata/fuzz/, so plain "go test"
# replays them from then on, and the next run starts from them.
FUZZ_TARGETS = \
	internal/spf:FuzzParse \
	internal/spf:FuzzExplanation \
	internal/policyd:FuzzReadRequest \
	internal/migrate:FuzzReadAccess \
	internal/greylist:FuzzNormalizeSender \
	internal/labdns:FuzzParseZoneFile \
	internal/dnsx:FuzzTXTEscapes \
	internal/dnsx:FuzzDNSSECAnswer \
	internal/dkim:FuzzParseSignature \
	internal/dkim:FuzzParseKey \
	internal/dkim:FuzzBodyCanonicalization \
	internal/dkim:FuzzSelfCanonical \
	internal/dkim:FuzzReadHeader \
	internal/dkim:FuzzRSAVerify \
	internal/lab:FuzzParse \
	internal/arc:FuzzValidate \
	internal/phish:FuzzCheck \
	internal/dnsbl:FuzzParseSites \
	internal/dnsbl:FuzzNormalizeDomainFastPath \
	internal/phish:FuzzMailbox \
	internal/phish:FuzzHTMLTags \
	internal/phish:FuzzHiddenStyle \
	internal/phish:FuzzNextURL \
	internal/phish:FuzzPlainHTTPHost \
	internal/authres:FuzzParse \
	internal/dmarc:FuzzParseRecord \
	internal/dmarc:FuzzMailbox \
	internal/conncheck:FuzzRegexpTable \
	internal/milter:FuzzSession \
	internal/feedback:FuzzParse \
	internal/classify:FuzzExtract \
	internal/classify:FuzzDecodeCompact \
	internal/classify:FuzzTokenizer \
	internal/classify:FuzzTokenizerReference \
	internal/classify:FuzzParseAddress \
	internal/classify:FuzzParseMediaType \
	internal/classify:FuzzParseKept \
	internal/feedback:FuzzAttachments \
	internal/ddns:FuzzRewriteSPF \
	internal/labdns:FuzzUpdate \
	internal/mailbox:FuzzAngle \
	internal/mailbox:FuzzSimple \
	cmd/mailwall:FuzzTextLine \
	cmd/mailwall:FuzzAppendQuoted \
	cmd/mailwall:FuzzTextNeedsQuoting

fuzz:
	@set -e; cache="$$($(GO) env GOCACHE)/fuzz/mailwall"; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME); \
		mkdir -p $$pkg/testdata/fuzz/$$name; \
		if [ -d "$$cache/$$pkg/$$name" ]; then cp -n "$$cache/$$pkg/$$name"/* $$pkg/testdata/fuzz/$$name/; fi; \
		echo "   corpus: $$(ls $$pkg/testdata/fuzz/$$name | wc -l) inputs in $$pkg/testdata/fuzz/$$name"; \
	done

# The starter model built into the binary: the SpamAssassin messages of
# ../shared/corpus's train split only (CC0), never phishing_pot's, through
# the default rules (--config /dev/null: no site config), without the
# features that date a message (--era-neutral). The same corpus
# gives the same file byte for byte (TestStarterReproducible).
model:
	$(GO) run ./cmd/mailwall train --config /dev/null --labels ../shared/corpus/split.tsv --split train --classes spam,ham --era-neutral -o internal/classify/starter/bayes.mwc ../shared/corpus

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# Side by side with postfix-policyd-spf-python (apt-get install postfix-policyd-spf-python).
bench-policy:
	$(GO) run ./bench/policy -n 16000 -c 8 -pin

# Everything side by side in one run: installs and starts the peers
# (../shared/peers: OpenDKIM, OpenDMARC, rspamd, policyd-spf, nsd), restarts
# nsd without its rate limit, OpenDKIM so it survives concurrent sessions
# and rspamd doing only SPF, DKIM and DMARC (bench/peers), runs the milter
# and policy harnesses against them, stops them.
bench-peers:
	bash ../shared/peers/setup.sh
	NO_POSTFIX=1 bash ../shared/peers/start.sh
	bash bench/peers/nsd-no-rrl.sh
	bash bench/peers/opendkim-threadsafe.sh
	bash bench/peers/rspamd-auth-only.sh
	status=0; \
	$(GO) run ./bench/milter -n 2000 -c 1,8,64 -peer-c 1,8,64 -pin || status=$$?; \
	$(GO) run ./bench/policy -n 16000 -c 8 -pin || status=$$?; \
	bash ../shared/peers/stop.sh; exit $$status

# The .deb (dpkg-deb): static binary, systemd unit, the embedded defaults
# as /etc/mailwall/mailwall.yaml, man pages. Written to build/.
package:
	bash dist/mkdeb.sh build

clean:
	rm -f mailwall
	rm -rf build
