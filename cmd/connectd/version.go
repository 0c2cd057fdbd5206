package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release version, set at build time with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

// commit is the VCS revision, for builds that do not stamp VCS information
// (GOFLAGS=-buildvcs=false, builds outside a checkout): set it with
// -ldflags "-X main.commit=$(git rev-parse HEAD)". A stamped revision wins.
var commit = ""

// buildInfo is what the binary knows about how it was built.
type buildInfo struct {
	Version   string
	GoVersion string
	// Revision is the VCS commit the binary was built from, with
	// "-dirty" appended when the work tree had local changes; else the
	// commit set with -ldflags; else "".
	Revision string
	// Time is the commit time, "" when unknown.
	Time string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version(), Revision: commit}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				b.Revision = s.Value
			}
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && b.Revision != "" {
		b.Revision += "-dirty"
	}
	return b
}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	b := readBuildInfo()
	fmt.Fprintf(stdout, "connectd %s\n", b.Version)
	fmt.Fprintf(stdout, "go:       %s %s/%s\n", b.GoVersion, runtime.GOOS, runtime.GOARCH)
	if b.Revision != "" {
		fmt.Fprintf(stdout, "commit:   %s\n", b.Revision)
	}
	if b.Time != "" {
		fmt.Fprintf(stdout, "built at: %s (commit time)\n", b.Time)
	}
	return exitOK
}
