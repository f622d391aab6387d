package policyd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"mailwall/internal/dnsx"
)

// BenchmarkRequestWarm: policy requests over TCP (one connection per
// parallel client, several requests each, as Postfix does) with a warm
// DNS cache. Each request has its own instance, so each is checked.
func BenchmarkRequestWarm(b *testing.B) {
	res := dnsx.NewCache(&dnsx.Client{Servers: []string{labDNS(b)}}, dnsx.CacheOptions{})
	addr := startPolicyd(b, res, Options{})
	var n atomic.Int64
	warm, _ := net.Dial("tcp", addr)
	fmt.Fprintf(warm, "%s\n\n", request("127.0.0.2", "mail.example.test", "a@example.test", "warm"))
	bufio.NewReader(warm).ReadString('\n')
	warm.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for pb.Next() {
			fmt.Fprintf(c, "%s\n\n", request("127.0.0.2", "mail.example.test", "a@example.test", fmt.Sprint(n.Add(1))))
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "action=PREPEND Received-SPF: Pass") {
				b.Fatalf("%q %v", line, err)
			}
			r.ReadString('\n')
		}
	})
}
