module mailwall

go 1.26.8

require (
	github.com/miekg/dns v1.1.73
	golang.org/x/sync v0.24.0
	golang.org/x/sys v0.47.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/emersion/go-smtp v0.25.1
	golang.org/x/net v0.57.0
	golang.org/x/text v0.40.0
)

require github.com/emersion/go-sasl v0.0.0-20241020182733-b788ff22d5a6 // indirect
