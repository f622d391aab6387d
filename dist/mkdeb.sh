#!/usr/bin/env bash
# Builds the mailwall .deb with dpkg-deb: a static binary (CGO_ENABLED=0),
# the systemd unit, the embedded defaults as /etc/mailwall/mailwall.yaml
# (a conffile), the man pages and the docs.
# Usage: dist/mkdeb.sh [OUTDIR]   (default: build/); prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

arch="$(go env GOARCH)"
case "$arch" in
  amd64|arm64|i386|riscv64|ppc64el|s390x) ;;
  386) arch=i386 ;;
  arm) arch=armhf ;;
  ppc64le) arch=ppc64el ;;
esac
# Debian version: the latest v* tag, else 0.0~git; then the commit date
# and hash, so every commit builds a newer package than the one before.
tag="$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)"
base="${tag#v}"; base="${base:-0.0~git}"
version="${base}+$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S).$(git rev-parse --short=8 HEAD)"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then version="${version}.dirty"; fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/mailwall"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/mailwall" \
  "$pkg/usr/share/man/man5" "$pkg/usr/share/man/man8" "$pkg/usr/share/doc/mailwall"

# The .deb's version is stamped in, so "mailwall version" and
# mailwall_build_info name the package that is installed.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X mailwall/internal/version.Stamped=$version" -o "$pkg/usr/bin/mailwall" ./cmd/mailwall
"$pkg/usr/bin/mailwall" config default >"$pkg/etc/mailwall/mailwall.yaml"
install -m 0644 dist/mailwall.service "$pkg/lib/systemd/system/mailwall.service"
# The dashboard's release and delete of held mail: a root helper per
# connection on a socket of group mailwall (mailwall web queue-helper).
install -m 0644 dist/mailwall-queue.socket dist/mailwall-queue@.service "$pkg/lib/systemd/system/"
for page in docs/man/*.[58]; do
  gzip -9n <"$page" >"$pkg/usr/share/man/man${page##*.}/$(basename "$page").gz"
done
# The docs keep their layout, so the README's docs/... links and the
# pages' ../README.md and man/... links hold in the installed copy.
install -m 0644 README.md "$pkg/usr/share/doc/mailwall/"
install -D -m 0644 -t "$pkg/usr/share/doc/mailwall/docs" docs/*.md
install -D -m 0644 -t "$pkg/usr/share/doc/mailwall/docs/man" docs/man/*.[58]
# A Grafana dashboard and Prometheus alert rules, to copy into each.
install -D -m 0644 -t "$pkg/usr/share/mailwall/monitoring" dist/monitoring/mailwall-dashboard.json dist/monitoring/mailwall-alerts.yml
install -m 0755 dist/debian/postinst dist/debian/prerm dist/debian/postrm "$pkg/DEBIAN/"
echo /etc/mailwall/mailwall.yaml >"$pkg/DEBIAN/conffiles"
size="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: mailwall
Version: $version
Architecture: $arch
Maintainer: mailwall developers <mailwall@example.test>
Installed-Size: $size
Depends: passwd, procps
Recommends: postfix
Section: mail
Priority: optional
Description: one mail filter for Postfix: SPF, DKIM, DMARC, ARC and phishing checks
 mailwall replaces postfix-policyd-spf-python, OpenDKIM and OpenDMARC with
 one daemon: a milter and a policy server checking SPF, DKIM, DMARC, ARC,
 the client's DNS and HELO, scoring phishing signs, signing outgoing mail,
 and sending and reading DMARC reports, with a dashboard and metrics.
 "mailwall import" reads the old daemons' configuration and
 "mailwall postfix-config --apply" switches Postfix over.
CONTROL
deb="$out/mailwall_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build -Zxz "$pkg" "$deb" >/dev/null
echo "$deb"
