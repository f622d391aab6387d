package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "mailwall", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"},
			{Key: "vcs.time", Value: "2026-12-06T08:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, tc := range []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    Info
	}{
		{"checkout", "", bi, Info{"(devel)", "abc123-dirty", "2026-12-06T08:00:00Z", "go1.26.0"}},
		{"deb", "1.2+20261206.abc", bi, Info{"1.2+20261206.abc", "abc123-dirty", "2026-12-06T08:00:00Z", "go1.26.0"}},
		{"no build info", "", nil, Info{"unknown", "unknown", "unknown", "unknown"}},
		{"no vcs", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.0.0"}}, Info{"v1.0.0", "unknown", "unknown", "go1.26.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromBuildInfo(tc.stamped, func() (*debug.BuildInfo, bool) { return tc.bi, tc.bi != nil })
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
