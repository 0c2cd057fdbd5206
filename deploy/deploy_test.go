// Package deploy_test checks the deployment files under deploy/ against the
// code they must match, since no Kubernetes cluster runs here: the
// manifests parse, the config they mount loads and validates as connectd
// would load it, every ${VAR} in it is set by the pod, the ports and
// probes are the admin API's, and the selectors select the pods.
package deploy_test

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/connectd/connectd/admin"
	_ "github.com/connectd/connectd/component/all"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/pipeline"
)

// object is one decoded manifest.
type object map[string]any

// get walks o by keys (strings for maps, ints for lists) and returns the
// value, or nil where the path does not exist.
func (o object) get(path ...any) any {
	var v any = map[string]any(o)
	for _, k := range path {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func (o object) str(path ...any) string {
	s, _ := o.get(path...).(string)
	return s
}

func (o object) num(t *testing.T, path ...any) int {
	t.Helper()
	switch n := o.get(path...).(type) {
	case uint64:
		return int(n)
	case int64:
		return int(n)
	case int:
		return n
	}
	t.Fatalf("%v: not a number: %#v", path, o.get(path...))
	return 0
}

// manifests reads every document of every YAML file in dir, by kind/name.
func manifests(t *testing.T, dir string) map[string]object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	out := map[string]object{}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(r)
		for {
			var o map[string]any
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			key := object(o).str("kind") + "/" + object(o).str("metadata", "name")
			if _, dup := out[key]; dup {
				t.Fatalf("%s: %s defined twice", f, key)
			}
			out[key] = o
		}
		r.Close()
	}
	return out
}

func must(t *testing.T, docs map[string]object, key string) object {
	t.Helper()
	o, ok := docs[key]
	if !ok {
		t.Fatalf("no %s among the manifests", key)
	}
	return o
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:[^}]*)?\}`)

func TestKubernetesManifests(t *testing.T) {
	docs := manifests(t, "kubernetes")
	sts := must(t, docs, "StatefulSet/connectd")
	pod := object(sts.get("spec", "template").(map[string]any))
	ctr := object(pod.get("spec", "containers", 0).(map[string]any))
	labels, _ := pod.get("metadata", "labels").(map[string]any)

	// The env the pod gives connectd: its own entries and the Secret's keys.
	env := map[string]string{}
	for _, e := range ctr.get("env").([]any) {
		e := object(e.(map[string]any))
		env[e.str("name")] = e.str("value")
		if e.str("name") == "POD_NAME" {
			if got := e.str("valueFrom", "fieldRef", "fieldPath"); got != "metadata.name" {
				t.Errorf("POD_NAME comes from %q, want metadata.name (the stable pod name)", got)
			}
			env["POD_NAME"] = "connectd-0"
		}
	}
	for _, from := range ctr.get("envFrom").([]any) {
		name := object(from.(map[string]any)).str("secretRef", "name")
		secret := must(t, docs, "Secret/"+name)
		for k, v := range secret.get("stringData").(map[string]any) {
			env[k] = v.(string)
		}
	}

	// The mounted config loads and validates as connectd loads it, with
	// every ${VAR} without a default set by the pod.
	cm := must(t, docs, "ConfigMap/"+pod.str("spec", "volumes", 0, "configMap", "name"))
	mount := object(ctr.get("volumeMounts", 0).(map[string]any)).str("mountPath")
	args := ctr.get("args").([]any)
	cfgPath := args[len(args)-1].(string)
	if filepath.Dir(cfgPath) != mount {
		t.Fatalf("connectd reads %s, the config is mounted at %s", cfgPath, mount)
	}
	text := cm.str("data", filepath.Base(cfgPath))
	if text == "" {
		t.Fatalf("the ConfigMap has no %s", filepath.Base(cfgPath))
	}
	for _, m := range varRef.FindAllStringSubmatch(text, -1) {
		if _, ok := env[m[1]]; !ok && m[2] == "" {
			t.Errorf("the config uses ${%s}, which the pod does not set", m[1])
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	path := filepath.Join(t.TempDir(), "connectd.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err == nil {
		err = pipeline.Validate(cfg)
	}
	if err != nil {
		t.Fatalf("the ConfigMap's config does not load: %v", err)
	}
	if cfg.InstanceID != "connectd-0" {
		t.Errorf("instance_id is %q, want the pod name (${POD_NAME}): static membership needs it stable", cfg.InstanceID)
	}
	if cfg.Cluster == nil || cfg.Admin.StateFile != "" {
		t.Errorf("cluster = %+v, state_file = %q: the replicas must form one cluster (an API change on one pod reaches all)", cfg.Cluster, cfg.Admin.StateFile)
	}

	// Ports and probes are the admin API's.
	_, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		t.Fatal(err)
	}
	var admin0 object
	for _, p := range ctr.get("ports").([]any) {
		if p := object(p.(map[string]any)); p.str("name") == "admin" {
			admin0 = p
		}
	}
	if admin0 == nil || strconv.Itoa(admin0.num(t, "containerPort")) != port {
		t.Errorf("container port admin is %v, the config listens on %s", admin0, cfg.Admin.Listen)
	}
	if host, _, _ := net.SplitHostPort(cfg.Admin.Listen); host == "127.0.0.1" || host == "localhost" {
		t.Errorf("admin.listen %s is loopback: the kubelet's probes and the Service cannot reach it", cfg.Admin.Listen)
	}
	if got := pod.str("metadata", "annotations", "prometheus.io/port"); got != port {
		t.Errorf("prometheus.io/port %q, want %s", got, port)
	}
	for probe, want := range map[string]string{"readinessProbe": "/ready", "livenessProbe": "/health"} {
		if got := ctr.str(probe, "httpGet", "path"); got != want || ctr.str(probe, "httpGet", "port") != "admin" {
			t.Errorf("%s is %s on port %q, want %s on admin", probe, got, ctr.str(probe, "httpGet", "port"), want)
		}
		if !slices.Contains(admin.ProbePaths, want) {
			t.Errorf("%s needs the admin token: probes carry none", want)
		}
	}

	// A SIGTERM must finish the open batches before the kubelet kills.
	grace := time.Duration(pod.num(t, "spec", "terminationGracePeriodSeconds")) * time.Second
	for _, c := range cfg.Connectors {
		if need := c.ShutdownTimeout.D() + 10*time.Second; grace < need {
			t.Errorf("terminationGracePeriodSeconds %v < connector %s's shutdown_timeout + 10s (%v)", grace, c.Name, need)
		}
	}
	// The image's user (make image) is the pod's.
	if got := pod.num(t, "spec", "securityContext", "runAsUser"); got != imageUID {
		t.Errorf("runAsUser %d, the image runs as %d", got, imageUID)
	}

	// Every Service and the PodDisruptionBudget select these pods, and the
	// Services' target port is the container's.
	for key, o := range docs {
		var sel map[string]any
		switch o.str("kind") {
		case "Service":
			sel, _ = o.get("spec", "selector").(map[string]any)
			if tp := o.str("spec", "ports", 0, "targetPort"); tp != "admin" {
				t.Errorf("%s targets port %q, want admin", key, tp)
			}
		case "PodDisruptionBudget", "StatefulSet":
			sel, _ = o.get("spec", "selector", "matchLabels").(map[string]any)
		default:
			continue
		}
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", key)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selects %s=%v, the pods have %v", key, k, v, labels[k])
			}
		}
	}
	if got := sts.str("spec", "serviceName"); docs["Service/"+got] == nil {
		t.Errorf("the StatefulSet's serviceName %q is no Service here", got)
	}
}
