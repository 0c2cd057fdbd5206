package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/pipeline"
)

func validateCmd(args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet("validate", "-c FILE", stderr)
	path := configFlag(flags)
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "connectd validate: -c FILE is required")
		flags.Usage()
		return exitUsage
	}
	cfg, err := loadAndValidate(*path)
	if err != nil {
		printErrors(stderr, *path, err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: ok (%d connectors)\n", *path, len(cfg.Connectors))
	return exitOK
}

// loadAndValidate loads path and decodes every component of every connector
// (sources, transforms, sinks), without connecting to anything: what both
// validate and run check before doing anything else. The error is
// config.Errors when the problems are in the file.
func loadAndValidate(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if cfg == nil {
		return nil, err // unreadable, or not YAML at all
	}
	// The components are checked even when the file has other problems,
	// so one run reports every error.
	if err := config.Merge(err, pipeline.Validate(cfg)); err != nil {
		return nil, err
	}
	return cfg, nil
}

// printErrors writes one line per problem, FILE:LINE:COL: message, so
// editors and CI logs can jump to each. A message spanning lines (an
// expression compiler's caret diagram) keeps its later lines, indented, so
// the next problem still starts a line with its position. A problem with no
// position (reading the file failed) is attributed to file.
func printErrors(w io.Writer, file string, err error) {
	var ce config.Errors
	if !errors.As(err, &ce) {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			fmt.Fprintln(w, err) // *fs.PathError already names the file
		} else {
			fmt.Fprintf(w, "%s: %v\n", file, err)
		}
		return
	}
	for _, e := range ce {
		msg := e.Error()
		if e.Pos == (config.Position{}) {
			msg = file + ": " + e.Msg
		}
		lines := strings.Split(strings.TrimRight(msg, "\n"), "\n")
		fmt.Fprintln(w, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintln(w, "\t"+l)
		}
	}
}
