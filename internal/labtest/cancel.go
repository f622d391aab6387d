package labtest

import (
	"context"
	"sync/atomic"

	"mailwall/internal/dnsx"
)

// CancelingResolver answers as R does whatever the context, as a cache
// already holding the answer would, and calls Cancel at every lookup: a
// caller (the milter client) hanging up while its message is checked.
// Lookups counts the queries asked.
type CancelingResolver struct {
	R       dnsx.Resolver
	Cancel  context.CancelFunc
	Lookups atomic.Int32
}

// Query implements dnsx.Resolver.
func (c *CancelingResolver) Query(_ context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	c.Lookups.Add(1)
	c.Cancel()
	return c.R.Query(context.Background(), name, qtype)
}
