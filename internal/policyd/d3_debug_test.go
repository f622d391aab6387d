package policyd

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/debuglog"
	"mailwall/internal/dnsx"
	"mailwall/internal/spf"
)

// TestDebugPeerRequest: for a client in Debug, the request, the SPF
// lookups' DNS answers and the answer are logged with debug_peer=true;
// for another client nothing is.
func TestDebugPeerRequest(t *testing.T) {
	res := debuglog.Wrap(dnsx.NewCache(&dnsx.Client{Servers: []string{labDNS(t)}, Timeout: 2 * time.Second}, dnsx.CacheOptions{}))
	srv := New(&spf.Checker{Resolver: res}, Options{}, 10, quiet)
	var buf bytes.Buffer
	srv.Debug = debuglog.NewPeers(slog.New(slog.NewTextHandler(&buf, nil)), []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")})
	req := func(ip string) Request {
		return Request{"request": "smtpd_access_policy", "protocol_state": "RCPT", "client_address": ip, "helo_name": "mail.example.test",
			"sender": "a@example.test", "recipient": "b@rcpt.test", "instance": "i-" + ip}
	}
	srv.Decide(req("127.0.0.3"))
	if buf.Len() != 0 {
		t.Fatalf("a client not in debug_peers logged:\n%s", buf.String())
	}
	resp := srv.Decide(req("127.0.0.2"))
	got := buf.String()
	for _, want := range []string{
		`msg="debug: policy request" debug_peer=true client=127.0.0.2 request="[client_address=127.0.0.2 helo_name=mail.example.test`,
		`msg="debug: dns" debug_peer=true client=127.0.0.2 name=example.test type=TXT rcode=NOERROR`, "v=spf1 ip4:127.0.0.2",
		`msg="debug: policy checks" debug_peer=true client=127.0.0.2 action=` + string(resp.Action),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}

	// Served: the answer Postfix gets is logged too.
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	buf.Reset()
	line := dial(t, "tcp", ln.Addr().String()).ask(t, "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.2\nhelo_name=mail.example.test\nsender=a@example.test\nrecipient=b@rcpt.test\ninstance=x1")
	if want := `msg="debug: policy answer" debug_peer=true client=127.0.0.2 line="` + line + `"`; !strings.Contains(buf.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, buf.String())
	}
}
