package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestVerifyOperationalErrors(t *testing.T) {
	// A loopback port with nothing listening: bind one, then free it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	embedded := writeConfig(t, dir, "embedded.yaml", `
kafka:
	embedded: {listen: `+free+`}
connectors:
	- name: gen
		source: {type: generator}
		sink: {type: kafka, topic: out}
`)
	tests := []struct {
		name string
		args []string
		want []string // fragments of stderr
	}{
		{"unknown connector", []string{"-c", embedded, "--connector", "nope"}, []string{`no connector "nope"`, "gen"}},
		{"embedded broker not running", []string{"-c", embedded, "--connector", "gen"}, []string{"cannot reach Kafka at " + free, "connectd run"}},
		{"missing connector flag", []string{"-c", embedded}, []string{"--connector NAME"}},
		{"missing file", []string{"-c", dir + "/nope.yaml", "--connector", "gen"}, []string{"nope.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := connectd(t, time.Minute, nil, append([]string{"verify"}, tc.args...)...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing (no report without an answer)", r.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// --stopped and the exit codes, on a connector's state written by hand:
// one input record per partition, its output, and the group's checkpoint
// past each. A partition whose checkpoint is gone is lag on a running
// pipeline and a failure with --stopped, where its output beyond the
// checkpoint is unexpected too; so is a duplicate whose origin lies beyond
// the checkpoint, which a check of a running pipeline must leave out (it
// could be a later batch's). Each failure is exit 1 with its count in the
// JSON line.
func TestVerifyStoppedAndUncheckedPartitions(t *testing.T) {
	c := newCluster(t)
	path := writeConfig(t, t.TempDir(), "copy.yaml", `
kafka:
	brokers: [`+strings.Join(c.ListenAddrs(), ",")+`]
connectors:
	- name: copy
		source: {type: kafka, topics: [in]}
		sink: {type: kafka, topic: out}
`)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	produce := func(topic string, p int32, id, origin string) {
		t.Helper()
		r := &kgo.Record{Topic: topic, Partition: p, Value: []byte(`{}`), Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}}}
		if origin != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "connectd-origin", Value: []byte(origin)})
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	offsets := kadm.Offsets{}
	for p := range int32(3) {
		id := fmt.Sprintf("e-%d", p)
		produce("in", p, id, "")
		produce("out", p, id, fmt.Sprintf("in/%d/0", p))
		offsets.Add(kadm.Offset{Topic: "in", Partition: p, At: 1, LeaderEpoch: -1})
	}
	if resp, err := adm.CommitOffsets(ctx, "connectd-copy", offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}

	run := func(stopped bool, wantCode int, want ...string) {
		t.Helper()
		args := []string{"verify", "-c", path, "--connector", "copy"}
		if stopped {
			args = append(args, "--stopped")
		}
		r := connectd(t, time.Minute, nil, args...)
		if r.code != wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, wantCode, r.stdout, r.stderr)
		}
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: the JSON line lacks %s: %s", strings.Join(args, " "), w, r.stdout)
			}
		}
	}
	clean := `{"expected":3,"actual":3,"duplicates":0,"missing":0,"unexpected":0}`
	run(false, exitOK, clean)
	run(true, exitOK, `{"expected":3,"actual":3,"duplicates":0,"missing":0,"unexpected":0,"stopped":true}`)

	set := kadm.TopicsSet{}
	set.Add("in", 2)
	if resp, err := adm.DeleteOffsets(ctx, "connectd-copy", set); err != nil || resp.Error() != nil {
		t.Fatalf("delete offsets: %v %v", err, resp.Error())
	}
	unchecked := `"unchecked_partitions":1,"unchecked_partition_ids":["in/2: offsets 0 to 0"]`
	run(false, exitOK, `{"expected":2,"actual":2,"duplicates":0,"missing":0,"unexpected":0,`+unchecked+`}`)
	run(true, exitFail, `{"expected":2,"actual":3,"duplicates":0,"missing":0,"unexpected":1,"unexpected_ids":["out:e-2"],`+unchecked+`,"beyond_checkpoint":1,"stopped":true}`)
	if resp, err := adm.CommitOffsets(ctx, "connectd-copy", offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}

	produce("out", 0, "e-0", "in/0/7") // a duplicate from beyond the checkpoint
	run(false, exitOK, clean)
	run(true, exitFail, `{"expected":3,"actual":4,"duplicates":0,"missing":0,"unexpected":1,"unexpected_ids":["out:e-0"],"beyond_checkpoint":1,"stopped":true}`)
}
