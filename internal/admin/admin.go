// Package admin serves the daemon's admin socket: HTTP on a unix socket
// that only its owner may open (mode 0600), for commands that look into or
// change the running daemon, such as "mailwall dns query" and "mailwall
// dns flush". It never listens on the network.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/netguard"
)

// Server answers on the admin socket.
type Server struct {
	Cache *dnsx.Cache
	Log   *slog.Logger

	http *http.Server
	ln   *netguard.Listener
	path string
	// timeout replaces readTimeout in tests.
	timeout time.Duration
}

// DNSAnswer is the reply to a query: what the daemon's cache holds.
type DNSAnswer struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Rcode string `json:"rcode"`
	// Cached is true when the answer came from the cache; TTL is then the
	// time it has left there, else the answer's full TTL as just fetched.
	Cached  bool     `json:"cached"`
	TTL     int      `json:"ttl"`
	Records []string `json:"records"`
	Error   string   `json:"error,omitempty"`
	// DNSSEC is the answer's status when dns.dnssec validates: secure,
	// insecure, unvalidated, or bogus (then Error names the failing
	// link); "" when validation is off. DNSSECReason says why an answer
	// is insecure or unvalidated.
	DNSSEC       string `json:"dnssec,omitempty"`
	DNSSECReason string `json:"dnssec_reason,omitempty"`
}

// FlushResult is the reply to a flush.
type FlushResult struct {
	Name    string `json:"name,omitempty"` // "" when the whole cache went
	Entries int    `json:"entries"`        // entries dropped
}

// Listen creates the socket at path (its directory too, mode 0750), owner
// only. A stale socket left by a crash is replaced; a live one is an error.
func (s *Server) Listen(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("admin: %s: another daemon is listening", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("admin: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dns/query", s.query)
	mux.HandleFunc("POST /dns/flush", s.flush)
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	s.ln = netguard.New(ln, netguard.Config{Name: "admin " + path, MaxConns: maxConns, Log: log})
	s.path = path
	rt := readTimeout
	if s.timeout > 0 {
		rt = s.timeout
	}
	s.http = &http.Server{Handler: noBody(mux), ReadHeaderTimeout: rt, ReadTimeout: rt,
		WriteTimeout: writeTimeout, IdleTimeout: rt, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return nil
}

// Bounds of the socket. Only the daemon's user can connect, but what it
// runs (a script in a loop, a stuck client) must not take the daemon's
// file descriptors or goroutines: connections are few, short and small.
// The write timeout leaves room for a query's 10 s DNS wait.
const (
	maxConns     = 16
	readTimeout  = 10 * time.Second
	writeTimeout = 30 * time.Second
)

// noBody refuses request bodies: no endpoint reads one.
func noBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 0 {
			http.Error(w, "no body expected", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 0)
		h.ServeHTTP(w, r)
	})
}

// ListenerStats are the counters of the socket's guarded listener
// (internal/netguard); zero before Listen.
func (s *Server) ListenerStats() netguard.Stats {
	if s.ln == nil {
		return netguard.Stats{}
	}
	return s.ln.Stats()
}

// Serve answers until Shutdown.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server and removes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	os.Remove(s.path)
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	typ := strings.ToUpper(r.URL.Query().Get("type"))
	if typ == "" {
		typ = "A"
	}
	qtype, ok := dns.StringToType[typ]
	if name == "" || !ok {
		writeJSON(w, http.StatusBadRequest, DNSAnswer{Name: name, Type: typ, Error: "need a name and a record type such as A, MX or TXT"})
		return
	}
	out := DNSAnswer{Name: dnsx.Fqdn(name), Type: typ}
	a, left, cached := s.Cache.Peek(name, qtype)
	if cached {
		out.Cached, out.TTL = true, int(left.Round(time.Second)/time.Second)
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		var err error
		a, err = s.Cache.Query(ctx, name, qtype)
		if err != nil {
			out.Error = err.Error()
			if errors.Is(err, dnsx.ErrBogus) {
				out.DNSSEC = dnsx.Bogus.String()
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		out.TTL = int(a.TTL)
	}
	out.Rcode = dns.RcodeToString[a.Rcode]
	if a.Security != dnsx.Unvalidated || a.SecurityReason != "" {
		out.DNSSEC, out.DNSSECReason = a.Security.String(), a.SecurityReason
	}
	for _, rr := range a.Records {
		if cached {
			// Show the TTL the cache has left, not the one it was given.
			rr = dns.Copy(rr)
			rr.Header().Ttl = uint32(out.TTL)
		}
		out.Records = append(out.Records, rr.String())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) flush(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		n := s.Cache.Stats().Entries
		s.Cache.Flush()
		s.Log.Info("admin: DNS cache flushed", "entries", n)
		writeJSON(w, http.StatusOK, FlushResult{Entries: n})
		return
	}
	n := s.Cache.FlushName(name)
	s.Log.Info("admin: DNS cache entries flushed", "name", name, "entries", n)
	writeJSON(w, http.StatusOK, FlushResult{Name: dnsx.Fqdn(name), Entries: n})
}

// Client talks to a daemon's admin socket.
type Client struct {
	Path string
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{Path: path, http: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

func (c *Client) do(method, endpoint string, q url.Values, out any) error {
	req, err := http.NewRequest(method, "http://mailwall"+endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket %s: %w (is mailwall serve running, and are you its user?)", c.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin socket %s: %s: %w", c.Path, resp.Status, err)
	}
	return nil
}

// Query asks what the daemon's cache holds for name and type.
func (c *Client) Query(name, typ string) (*DNSAnswer, error) {
	var a DNSAnswer
	if err := c.do("GET", "/dns/query", url.Values{"name": {name}, "type": {typ}}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Flush drops name's entries from the daemon's cache, or all of them when
// name is "".
func (c *Client) Flush(name string) (*FlushResult, error) {
	var f FlushResult
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	if err := c.do("POST", "/dns/flush", q, &f); err != nil {
		return nil, err
	}
	return &f, nil
}
