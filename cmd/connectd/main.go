// Command connectd is the exactly-once Kafka connector daemon: `run` hosts
// the connectors of a YAML config, `validate` checks a config without
// connecting to anything, `verify` runs the exactly-once checker against a
// connector's input and output, `replay` and `promote` drive a Kappa
// re-processing through a running daemon, `list` names the sources and
// sinks this build knows, and `version` says what was built.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Exit codes shared by the subcommands.
const (
	exitOK = 0
	// exitFail: the config is invalid, the daemon could not start, or
	// verify found the output not exactly once.
	exitFail = 1
	// exitUsage: bad command line, or (verify) an operational error that
	// prevented an answer.
	exitUsage = 2
)

const usage = `connectd: exactly-once Kafka connectors

Usage:
  connectd run      -c FILE [--log-level LEVEL]   run the connectors of FILE
                    [--until end|TIME [--output text|json]]
                                                  as a bounded job: read up to WHERE, commit, exit
  connectd validate -c FILE                       check FILE; exit 1 with every error
  connectd verify   -c FILE --connector NAME [--timeout 2m] [--stopped]
                                                  check a connector's output is exactly once
  connectd replay   -c FILE --connector NAME [--with DEF] [--from beginning|TIME]
                                                  start a Kappa replay beside the live connector
  connectd replay   -c FILE --connector NAME --status
                                                  show the replay's state and lag
  connectd promote  -c FILE --connector SHADOW [--force]
                                                  switch readers to a caught-up replay
  connectd list     [--json | --markdown]         list the sources and sinks this build knows
  connectd version                                print version, Go version and commit

Run 'connectd COMMAND -h' for a command's flags.
`

// command is one subcommand: it parses its own flags from args and returns
// the process exit code.
type command func(args []string, stdout, stderr io.Writer) int

var commands = map[string]command{
	"run":      runCmd,
	"validate": validateCmd,
	"verify":   verifyCmd,
	"replay":   replayCmd,
	"promote":  promoteCmd,
	"list":     listCmd,
	"version":  versionCmd,
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "connectd: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	return cmd(args[1:], stdout, stderr)
}

// newFlagSet returns a flag set for subcommand name that reports errors
// instead of exiting, so each command maps them to exitUsage itself.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("connectd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: connectd %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; ok is false when the command should return code
// (0 for -h, exitUsage for a bad flag or a stray argument).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// configFlag registers -c/--config.
func configFlag(fs *flag.FlagSet) *string {
	path := new(string)
	fs.StringVar(path, "c", "", "config `FILE` (YAML)")
	fs.StringVar(path, "config", "", "config `FILE` (same as -c)")
	return path
}

// levelFlag is --log-level: debug, info, warn or error.
type levelFlag struct{ slog.Level }

func (l *levelFlag) Set(s string) error {
	if err := l.Level.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return fmt.Errorf("log level %q is not debug, info, warn or error", s)
	}
	return nil
}

func (l *levelFlag) String() string { return strings.ToLower(l.Level.String()) }

// logLevelFlag registers --log-level, default info.
func logLevelFlag(fs *flag.FlagSet) *levelFlag {
	l := &levelFlag{slog.LevelInfo}
	fs.Var(l, "log-level", "log `LEVEL`: debug, info (default), warn or error")
	return l
}

// logFormatFlag registers --log-format (text or json).
func logFormatFlag(fs *flag.FlagSet) *string {
	return fs.String("log-format", "text", "log `FORMAT`: text (default) or json")
}

// newLogger logs to w at level in format (text or json), and makes it the
// default so packages that log through slog.Default() log the same way.
func newLogger(w io.Writer, level slog.Level, format string) (*slog.Logger, error) {
	h, err := newHandler(w, level, format)
	if err != nil {
		return nil, err
	}
	log := slog.New(h)
	slog.SetDefault(log)
	return log, nil
}

func newHandler(w io.Writer, level slog.Level, format string) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text", "":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
