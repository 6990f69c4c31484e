// Package version says which build of the operator's binaries is running:
// its version, the commit it was built from and the date of that source.
// make and tools/release set them with the linker:
//
//	-X github.com/surge-operator/surge-operator/internal/version.version=v0.1.0
//	-X github.com/surge-operator/surge-operator/internal/version.commit=<sha>
//	-X github.com/surge-operator/surge-operator/internal/version.sourceDateEpoch=<seconds>
//
// A binary built without them, by go build or go install, reports what the
// Go toolchain recorded in it: the module's version when installed as
// module@version, and the commit and its time when built in a checkout.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Set by the linker; empty otherwise.
var (
	version         string
	commit          string
	sourceDateEpoch string
)

// Info describes one build.
type Info struct {
	// Version is the release, such as v0.1.0; "(devel)" for a build that
	// neither the linker nor the toolchain gave a version.
	Version string
	// Commit is the full commit id, empty when unknown.
	Commit string
	// Modified is true when the checkout had uncommitted changes, as far as
	// the toolchain knows.
	Modified bool
	// Date is the source's date: SOURCE_DATE_EPOCH for make's builds (the
	// last commit's time), else the commit's time; zero when unknown.
	// Builds are reproducible, so the date of the source stands for the
	// date of the build.
	Date time.Time
	// GoVersion and Platform are the toolchain and GOOS/GOARCH.
	GoVersion string
	Platform  string
}

// Get returns the running binary's Info.
func Get() Info {
	info, _ := debug.ReadBuildInfo()
	return resolve(version, commit, sourceDateEpoch, info)
}

// resolve prefers what the linker set and falls back on the build info.
func resolve(linkedVersion, linkedCommit, linkedEpoch string, build *debug.BuildInfo) Info {
	info := Info{Version: linkedVersion, Commit: linkedCommit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if seconds, err := strconv.ParseInt(linkedEpoch, 10, 64); err == nil {
		info.Date = time.Unix(seconds, 0).UTC()
	}
	if build != nil {
		info.GoVersion = build.GoVersion
		settings := map[string]string{}
		for _, setting := range build.Settings {
			settings[setting.Key] = setting.Value
		}
		if info.Version == "" && build.Main.Version != "" && build.Main.Version != "(devel)" {
			info.Version = build.Main.Version
		}
		if info.Commit == "" {
			info.Commit = settings["vcs.revision"]
			info.Modified = settings["vcs.modified"] == "true"
		}
		if at, err := time.Parse(time.RFC3339, settings["vcs.time"]); err == nil && info.Date.IsZero() {
			info.Date = at.UTC()
		}
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	return info
}

// String is the text --version prints, one fact a line, unknown ones left
// out.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: %s\n", i.Version)
	if i.Commit != "" {
		commit := i.Commit
		if i.Modified {
			commit += " (with uncommitted changes)"
		}
		fmt.Fprintf(&b, "commit:  %s\n", commit)
	}
	if !i.Date.IsZero() {
		fmt.Fprintf(&b, "date:    %s\n", i.Date.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "go:      %s %s\n", i.GoVersion, i.Platform)
	return b.String()
}
