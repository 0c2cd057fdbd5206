package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/connectd/connectd/component"
)

// listCmd is `connectd list`: the sources and sinks this build knows, from
// the component registry (the same list as GET /connector-plugins).
// --markdown prints docs/components.md.
func listCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("list", "[--json | --markdown]", stderr)
	asJSON := fs.Bool("json", false, "print the plugins as JSON (GET /connector-plugins's shape)")
	markdown := fs.Bool("markdown", false, "print every component's fields as Markdown (docs/components.md)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case *asJSON && *markdown:
		fmt.Fprintln(stderr, "connectd list: --json and --markdown exclude each other")
		return exitUsage
	case *markdown:
		fmt.Fprint(stdout, component.Markdown())
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(component.Plugins()); err != nil {
			fmt.Fprintf(stderr, "connectd list: %v\n", err)
			return exitFail
		}
	default:
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tTYPE\tGUARANTEES\tSUMMARY")
		for _, p := range component.Plugins() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Type, p.Name, strings.Join(p.Guarantees, ","), p.Summary)
		}
		tw.Flush()
	}
	return exitOK
}
