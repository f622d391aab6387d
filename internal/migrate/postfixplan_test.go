package migrate

import (
	"reflect"
	"testing"
)

func TestPlanPostfix(t *testing.T) {
	const (
		milter = "inet:127.0.0.1:8895"
		policy = "inet:127.0.0.1:10045"
	)
	debianCommands := map[string]string{
		"smtp/inet":        "smtpd",
		"policyd-spf/unix": "spawn user=policyd-spf argv=/usr/bin/policyd-spf",
	}
	tests := []struct {
		name        string
		st          PostfixState
		alsoReplace []string
		want        map[string]string // param -> new value ("-" for removed)
		wantDisable []string
	}{
		{
			name: "the seed stack",
			st: PostfixState{
				Main: map[string]string{
					"smtpd_milters":                "unix:opendkim/opendkim.sock, inet:localhost:8893, inet:127.0.0.1:3310",
					"non_smtpd_milters":            "$smtpd_milters",
					"smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination, check_policy_service unix:private/policyd-spf",
					"policyd-spf_time_limit":       "3600",
				},
				Commands: debianCommands,
			},
			want: map[string]string{
				"smtpd_milters":                milter + ", inet:127.0.0.1:3310",
				"smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination, check_policy_service " + policy,
				"policyd-spf_time_limit":       "-",
				"milter_default_action":        "tempfail",
			},
			wantDisable: []string{"policyd-spf/unix"},
		},
		{
			name: "groups, overrides and a renamed service",
			st: PostfixState{
				Main: map[string]string{
					"smtpd_milters":                "{ inet:127.0.0.1:8891, connect_timeout=10s } { unix:/run/opendmarc/opendmarc.sock }",
					"non_smtpd_milters":            "inet:127.0.0.1:8891",
					"smtpd_recipient_restrictions": "reject_unauth_destination, check_policy_service { private/spfcheck, timeout=20s }",
				},
				Overrides: map[string]string{
					"submission/inet/smtpd_milters": "inet:127.0.0.1:8891",
				},
				Commands: map[string]string{"spfcheck/unix": "spawn user=nobody argv=/usr/bin/policyd-spf /etc/spf.conf"},
			},
			want: map[string]string{
				"smtpd_milters":                 milter,
				"non_smtpd_milters":             milter,
				"submission/inet/smtpd_milters": milter,
				"smtpd_recipient_restrictions":  "reject_unauth_destination, check_policy_service { " + policy + ", timeout=20s }",
				"milter_default_action":         "tempfail",
			},
			wantDisable: []string{"spfcheck/unix"},
		},
		{
			name: "nothing there yet",
			st:   PostfixState{Main: map[string]string{"compatibility_level": "3.6"}},
			want: map[string]string{
				"smtpd_milters":                milter,
				"smtpd_recipient_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service " + policy,
				"milter_default_action":        "tempfail",
			},
		},
		{
			name: "other milters and restrictions only",
			st: PostfixState{Main: map[string]string{
				"smtpd_milters":                "inet:127.0.0.1:3310",
				"smtpd_recipient_restrictions": "reject_unauth_destination",
			}},
			want: map[string]string{
				"smtpd_milters":                "inet:127.0.0.1:3310, " + milter,
				"smtpd_recipient_restrictions": "reject_unauth_destination, check_policy_service " + policy,
				"milter_default_action":        "tempfail",
			},
		},
		{
			name: "rspamd for authentication only",
			st: PostfixState{Main: map[string]string{"smtpd_milters": "inet:localhost:11332, inet:127.0.0.1:3310", "non_smtpd_milters": "inet:localhost:11332",
				"smtpd_recipient_restrictions": "reject_unauth_destination", "milter_default_action": "accept"}},
			alsoReplace: []string{"inet:localhost:11332"},
			want: map[string]string{
				"smtpd_milters":                milter + ", inet:127.0.0.1:3310",
				"non_smtpd_milters":            milter,
				"smtpd_recipient_restrictions": "reject_unauth_destination, check_policy_service " + policy,
				"milter_default_action":        "tempfail", // was accept
			},
		},
		{
			name: "already applied",
			st: PostfixState{Main: map[string]string{
				"milter_default_action":        "tempfail",
				"smtpd_milters":                milter + ", inet:127.0.0.1:3310",
				"smtpd_recipient_restrictions": "reject_unauth_destination, check_policy_service " + policy,
			}},
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := PlanPostfix(tt.st, milter, policy, tt.alsoReplace...)
			got := map[string]string{}
			for _, c := range plan.Changes {
				if _, dup := got[c.Param]; dup {
					t.Errorf("%s changed twice", c.Param)
				}
				if c.Remove {
					got[c.Param] = "-"
				} else {
					got[c.Param] = c.New
				}
				if c.Why == "" {
					t.Errorf("%s: no reason given", c.Param)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("changes:\n got %q\nwant %q", got, tt.want)
			}
			if !reflect.DeepEqual(plan.Disable, tt.wantDisable) {
				t.Errorf("disable %q, want %q", plan.Disable, tt.wantDisable)
			}
			if plan.Empty() != (len(tt.want) == 0 && len(tt.wantDisable) == 0) {
				t.Errorf("Empty() = %v", plan.Empty())
			}
			// Applying the plan and planning again changes nothing more.
			after := PostfixState{Main: map[string]string{}, Overrides: map[string]string{}, Commands: map[string]string{}}
			for k, v := range tt.st.Main {
				after.Main[k] = v
			}
			for k, v := range tt.st.Overrides {
				after.Overrides[k] = v
			}
			for _, c := range plan.Changes {
				m := after.Main
				if c.Override() {
					m = after.Overrides
				}
				if c.Remove {
					delete(m, c.Param)
				} else {
					m[c.Param] = c.New
				}
			}
			if again := PlanPostfix(after, milter, policy, tt.alsoReplace...); !again.Empty() {
				t.Errorf("planning again: %+v", again)
			}
		})
	}
}

func TestPostfixList(t *testing.T) {
	got := postfixList("a, b\n  c,,{ inet:x:1, connect_timeout=2s } d")
	want := []string{"a", "b", "c", "{ inet:x:1, connect_timeout=2s }", "d"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
