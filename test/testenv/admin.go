package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Send sends a request with a JSON body (or none) to a connectd admin API
// and returns the status code; an answer that is not 2xx is logged with
// its body.
func Send(t testing.TB, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, msg)
	}
	return resp.StatusCode
}

// GetJSON GETs url into v and returns the status code, 0 if nothing
// answered (a member being restarted).
func GetJSON(url string, v any) int {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}

// WaitGroupCommitted polls group's committed offsets on topic until they
// sum to n, failing t after within.
func WaitGroupCommitted(t testing.TB, adm *kadm.Client, group, topic string, n int64, within time.Duration) {
	t.Helper()
	var sum int64
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		offs, err := adm.FetchOffsets(context.Background(), group)
		if err != nil {
			continue
		}
		sum = 0
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic {
				sum += o.At
			}
		})
		if sum == n {
			return
		}
	}
	t.Fatalf("group %s committed %d of %d records of %s within %v", group, sum, n, topic, within)
}

// StatusBody is GET base/connectors/name/status's body, trimmed; an
// answer other than 200 is an error carrying the body.
func StatusBody(base, name string) ([]byte, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/connectors/" + name + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return bytes.TrimSpace(body), nil
}
