package version

import (
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	checkout := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/surge-operator/surge-operator", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "4a5571f2b6a0c3d9e8f7a6b5c4d3e2f1a0b9c8d7"},
			{Key: "vcs.time", Value: "2026-11-22T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	installed := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/surge-operator/surge-operator", Version: "v0.2.0"}}
	cases := []struct {
		name                  string
		version, commit, date string
		build                 *debug.BuildInfo
		want                  Info
	}{
		{
			name:    "linked by make: the linker's values win",
			version: "v0.1.0", commit: "0123456789abcdef0123456789abcdef01234567", date: "1767323045",
			build: checkout,
			want:  Info{Version: "v0.1.0", Commit: "0123456789abcdef0123456789abcdef01234567", Date: time.Unix(1767323045, 0).UTC(), GoVersion: "go1.26.0"},
		},
		{
			name:  "go build in a checkout: the commit and its time",
			build: checkout,
			want:  Info{Version: "(devel)", Commit: "4a5571f2b6a0c3d9e8f7a6b5c4d3e2f1a0b9c8d7", Modified: true, Date: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), GoVersion: "go1.26.0"},
		},
		{
			name:  "go install module@version: the module's version",
			build: installed,
			want:  Info{Version: "v0.2.0", GoVersion: "go1.26.0"},
		},
		{
			name:    "a linked version with the checkout's commit",
			version: "v0.1.0",
			build:   checkout,
			want:    Info{Version: "v0.1.0", Commit: "4a5571f2b6a0c3d9e8f7a6b5c4d3e2f1a0b9c8d7", Modified: true, Date: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), GoVersion: "go1.26.0"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := resolve(tc.version, tc.commit, tc.date, tc.build)
			got.Platform = ""
			if got != tc.want {
				t.Errorf("resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestStringLeavesOutWhatIsUnknown(t *testing.T) {
	text := Info{Version: "(devel)", GoVersion: "go1.26.0", Platform: "linux/amd64"}.String()
	if text != "version: (devel)\ngo:      go1.26.0 linux/amd64\n" {
		t.Errorf("String() = %q", text)
	}
	full := Info{Version: "v0.1.0", Commit: "abc", Modified: true, Date: time.Unix(1767323045, 0).UTC(), GoVersion: "go1.26.0", Platform: "linux/arm64"}.String()
	for _, want := range []string{"version: v0.1.0\n", "commit:  abc (with uncommitted changes)\n", "date:    2026-01-02T03:04:05Z\n"} {
		if !strings.Contains(full, want) {
			t.Errorf("String() = %q, want it to hold %q", full, want)
		}
	}
}
