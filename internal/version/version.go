// Package version says which build of mailwall is running: the version
// the package stamped in, else the module's, and the VCS revision and
// time the Go toolchain recorded.
package version

import (
	"fmt"
	"runtime/debug"
)

// Stamped is set at link time by dist/mkdeb.sh
// (-ldflags "-X mailwall/internal/version.Stamped=VERSION") to the .deb's
// version; empty in a plain "go build". It is a var only because -X can
// set nothing else; nothing writes it at run time.
var Stamped string

// Info is one build's identity.
type Info struct {
	Version   string // the .deb's version, else the module's ("(devel)" in a checkout)
	Revision  string // VCS commit, with "-dirty" when the tree had changes
	Time      string // VCS commit time (RFC 3339)
	GoVersion string
}

// Get reads the build's identity.
func Get() Info {
	return fromBuildInfo(Stamped, debug.ReadBuildInfo)
}

func fromBuildInfo(stamped string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: stamped, Revision: "unknown", Time: "unknown", GoVersion: "unknown"}
	bi, ok := read()
	if !ok {
		if in.Version == "" {
			in.Version = "unknown"
		}
		return in
	}
	in.GoVersion = bi.GoVersion
	if in.Version == "" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && in.Revision != "unknown" {
		in.Revision += "-dirty"
	}
	return in
}

// String is the line "mailwall version" prints.
func (i Info) String() string {
	return fmt.Sprintf("mailwall %s (revision %s, %s, %s)", i.Version, i.Revision, i.Time, i.GoVersion)
}
