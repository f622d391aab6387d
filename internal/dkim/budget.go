package dkim

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// DefaultBudget is the verification work one message may cost when no
// budget is set. Ordinary mail spends well under a millisecond of it
// (header hashing and one RSA or Ed25519 check per signature); with keys
// capped at MaxRSABits and h= at MaxSignedHeaders, only a message built to
// be costly (50 ARC sets of large fields, say) comes near.
const DefaultBudget = time.Second

// Budget bounds the work spent verifying one message: the header hashing
// and signature checks of its DKIM signatures and its ARC chain, which
// share it. Time waiting for DNS is not charged: a slow name server gives
// a temperror as it always has, not a signature left unchecked. A check
// under way is not interrupted (with the limits on keys and h= one is
// milliseconds at most); before each, the budget is looked at, and what
// finds it spent is reported as not evaluated.
type Budget struct {
	limit time.Duration
	spent atomic.Int64 // nanoseconds
}

type budgetKey struct{}

// WithBudget returns a context carrying a new budget of d (DefaultBudget
// when d <= 0) for one message: DKIM's Finish and ARC's Finish given it
// draw on the same budget.
func WithBudget(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		d = DefaultBudget
	}
	return context.WithValue(ctx, budgetKey{}, &Budget{limit: d})
}

// BudgetFrom returns the budget ctx carries, or, for a caller that set
// none, a new one of d (DefaultBudget when d <= 0).
func BudgetFrom(ctx context.Context, d time.Duration) *Budget {
	if b, ok := ctx.Value(budgetKey{}).(*Budget); ok {
		return b
	}
	if d <= 0 {
		d = DefaultBudget
	}
	return &Budget{limit: d}
}

// Spent reports whether the budget is used up.
func (b *Budget) Spent() bool { return time.Duration(b.spent.Load()) >= b.limit }

// Charge adds the time since start.
func (b *Budget) Charge(start time.Time) { b.spent.Add(int64(time.Since(start))) }

// Reason is the result reason for a check the budget did not reach.
func (b *Budget) Reason() string {
	return fmt.Sprintf("not evaluated: the message's verification budget (%s) is spent", b.limit)
}
