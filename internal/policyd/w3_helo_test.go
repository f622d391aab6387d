package policyd

import (
	"fmt"
	"sync"
	"testing"

	"mailwall/internal/spf"
)

// TestObserveHelo: every HELO check is heard with its result and the
// action that result alone leads to (Null: a fail prepends when there is
// a sender); none when helo_reject is No_Check.
func TestObserveHelo(t *testing.T) {
	res := labResolver(t)
	type seen struct {
		result spf.Result
		act    Action
	}
	for _, tc := range []struct {
		name   string
		policy RejectPolicy
		ip     string
		want   []seen
	}{
		{"pass", RejectFail, "127.0.0.2", []seen{{spf.Pass, Prepend}}},
		{"fail refused", RejectFail, "127.0.0.3", []seen{{spf.Fail, Reject}}},
		{"fail under Null, with a sender", RejectNull, "127.0.0.3", []seen{{spf.Fail, Prepend}}},
		{"not checked", RejectNoCheck, "127.0.0.3", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu  sync.Mutex
				got []seen
			)
			opts := Options{HeloReject: tc.policy, MailFromReject: RejectNever, HideReceiver: true,
				ObserveHelo: func(r spf.Result, a Action) { mu.Lock(); got = append(got, seen{r, a}); mu.Unlock() }}
			c := dial(t, "tcp", startPolicyd(t, res, opts))
			c.ask(t, request(tc.ip, "mail.example.test", "a@example.test", "w3"))
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("heard %v, want %v", got, tc.want)
			}
		})
	}
}
