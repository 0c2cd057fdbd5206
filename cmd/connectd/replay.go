package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/connectd/connectd/config"
)

// replayCmd starts a Kappa replay of a connector on the daemon running the
// config (through its admin API: the live connector and its shadow run in
// that daemon), or with --status shows the replay's lag.
func replayCmd(args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet("replay", "-c FILE --connector NAME [--with DEF] [--from beginning|TIME] | --status", stderr)
	cfgPath := configFlag(flags)
	name := flags.String("connector", "", "the live connector to replay (or, with --status, it or its shadow)")
	with := flags.String("with", "", "the shadow's definition: a `FILE` holding one connector (YAML or JSON, as an entry of connectors:); default the live connector's")
	from := flags.String("from", "beginning", "where the shadow starts reading: beginning, or an RFC 3339 `TIME`")
	status := flags.Bool("status", false, "show the replay's state and lag instead of starting one")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	cl, code := newAdminClient(flags.Name(), *cfgPath, *name, stderr)
	if cl == nil {
		return code
	}
	if *status {
		return cl.do(http.MethodGet, "/connectors/"+url.PathEscape(*name)+"/replay", nil, stdout, stderr)
	}
	req := map[string]any{"from": *from}
	if *with != "" {
		data, err := os.ReadFile(*with)
		if err != nil {
			fmt.Fprintf(stderr, "connectd replay: --with: %v\n", err)
			return exitUsage
		}
		js := data
		if !json.Valid(js) {
			if js, err = yaml.YAMLToJSON(data); err != nil {
				fmt.Fprintf(stderr, "connectd replay: --with %s: %v\n", *with, err)
				return exitUsage
			}
		}
		req["config"] = json.RawMessage(js)
	}
	body, err := json.Marshal(req)
	if err != nil {
		fmt.Fprintf(stderr, "connectd replay: %v\n", err)
		return exitUsage
	}
	return cl.do(http.MethodPost, "/connectors/"+url.PathEscape(*name)+"/replay", body, stdout, stderr)
}

// promoteCmd promotes a replay through the daemon's admin API.
func promoteCmd(args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet("promote", "-c FILE --connector SHADOW [--force]", stderr)
	cfgPath := configFlag(flags)
	name := flags.String("connector", "", "the replay (the shadow) to promote, or the connector it replays")
	force := flags.Bool("force", false, "promote even if the shadow has not caught up")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	cl, code := newAdminClient(flags.Name(), *cfgPath, *name, stderr)
	if cl == nil {
		return code
	}
	path := "/connectors/" + url.PathEscape(*name) + "/promote"
	if *force {
		path += "?force=true"
	}
	return cl.do(http.MethodPost, path, nil, stdout, stderr)
}

// adminClient talks to the admin API of the daemon running a config.
type adminClient struct {
	cmd, base, token string
	http             *http.Client
}

func newAdminClient(cmd, cfgPath, name string, stderr io.Writer) (*adminClient, int) {
	if cfgPath == "" || name == "" {
		fmt.Fprintf(stderr, "%s: -c FILE and --connector NAME are required\n", cmd)
		return nil, exitUsage
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, exitFail
	}
	return &adminClient{cmd: cmd, base: "http://" + cfg.Admin.Listen, token: cfg.Admin.Token,
		http: &http.Client{Timeout: 2 * time.Minute}}, exitOK
}

// do sends one request and prints the JSON answer, indented, to stdout (a
// success) or its message to stderr (exit 1).
func (c *adminClient) do(method, path string, body []byte, stdout, stderr io.Writer) int {
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.cmd, err)
		return exitUsage
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: the daemon's admin API at %s: %v (is `connectd run` running with this config?)\n", c.cmd, c.base, err)
		return exitFail
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintf(stderr, "%s: reading the answer: %v\n", c.cmd, err)
		return exitFail
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Message = string(data)
		}
		fmt.Fprintf(stderr, "%s: %s (HTTP %d)\n", c.cmd, e.Message, resp.StatusCode)
		return exitFail
	}
	var out bytes.Buffer
	if json.Indent(&out, data, "", "  ") != nil {
		out.Reset()
		out.Write(data)
	}
	out.WriteByte('\n')
	_, _ = stdout.Write(out.Bytes())
	return exitOK
}
