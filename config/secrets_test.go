package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSecret writes content to a new file under t's temporary directory
// and returns its path.
func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileReference(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"nl":      "s3cret\n",
		"two":     "s3cret\n\n",
		"crlf":    "s3cret\r\n",
		"bare":    "s3cret",
		"empty":   "",
		"inner":   "line1\nline2\n",
		"colon":   "a:b}c",
		"spaces":  " s3cret \n",
		"dollars": "${NOT_EXPANDED}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SET_FOR_TEST", "value")
	checkExpand(t, []expandCase{
		{in: "${file:" + dir + "/nl}", want: "s3cret"},
		{in: "${file:" + dir + "/two}", want: "s3cret\n"},
		{in: "${file:" + dir + "/crlf}", want: "s3cret"},
		{in: "${file:" + dir + "/bare}", want: "s3cret"},
		{in: "${file:" + dir + "/empty}", want: ""},
		{in: "${file:" + dir + "/inner}", want: "line1\nline2"},
		{in: "${file:" + dir + "/colon}", want: "a:b}c"},
		{in: "${file:" + dir + "/spaces}", want: " s3cret "},
		// A file's content is taken as is, never expanded again.
		{in: "${file:" + dir + "/dollars}", want: "${NOT_EXPANDED}"},
		{in: "u:${file:" + dir + "/nl}@${SET_FOR_TEST}", want: "u:s3cret@value"},
		{in: "$${file:" + dir + "/nl}", want: "${file:" + dir + "/nl}"},
		{in: "${file:" + dir + "/missing}", problem: "${file:" + dir + "/missing}: cannot read the file: no such file or directory"},
		{in: "${file:" + dir + "}", problem: "${file:" + dir + "}: cannot read the file: is a directory"},
		{in: "${file:relative/path}", problem: "${file:relative/path}: the path must be absolute"},
		{in: "${file:}", problem: "${file:}: the path must be absolute"},
	})
}

// TestParseFileReference reads a token and a sink's password from files,
// and reports an unreadable file at the value's position with its path but
// none of any file's content.
func TestParseFileReference(t *testing.T) {
	token := writeSecret(t, "token", "tok-3f9a\n")
	pass := writeSecret(t, "pass", "pw-77c1\n")
	src := `kafka: {brokers: [b]}
admin:
  token: ${file:` + token + `}
connectors:
  - name: c
    source: {type: kafka}
    sink:
      type: postgres
      password: ${file:` + pass + `}
`
	cfg, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token != "tok-3f9a" {
		t.Errorf("admin.token = %q, want tok-3f9a", cfg.Admin.Token)
	}
	var sink struct {
		Password string `yaml:"password"`
	}
	if err := cfg.Connectors[0].Sink.Decode(&sink); err != nil {
		t.Fatal(err)
	}
	if sink.Password != "pw-77c1" {
		t.Errorf("sink password = %q, want pw-77c1", sink.Password)
	}

	missing := filepath.Join(t.TempDir(), "gone")
	bad := strings.ReplaceAll(src, "${file:"+pass+"}", "${file:"+missing+"}")
	bad = strings.ReplaceAll(bad, "token: ${file:"+token+"}", "token: ${file:"+filepath.Dir(token)+"}")
	_, err = Parse("f.yaml", []byte(bad))
	want := "f.yaml:3:10: ${file:" + filepath.Dir(token) + "}: cannot read the file: is a directory\n" +
		"f.yaml:9:17: ${file:" + missing + "}: cannot read the file: no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("Parse with unreadable files:\n%v\nwant\n%s", err, want)
	}
	if err != nil && strings.Contains(err.Error(), "tok-3f9a") {
		t.Errorf("the error shows a secret: %v", err)
	}
}
