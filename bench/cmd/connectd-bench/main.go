// Command connectd-bench is connectd's benchmark harness; `make bench` runs
// it. See package bench and the README's Benchmarks section.
package main

import (
	"os"

	"github.com/connectd/connectd/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
