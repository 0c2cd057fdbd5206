package admin

import (
	"encoding/json"
	"testing"

	"github.com/connectd/connectd/config"
)

func TestMaskString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://user:pass@host:5432/db", "postgres://user:****@host:5432/db"},
		{"postgres://user@host/db", "postgres://user@host/db"},
		{"postgres://host:5432/db", "postgres://host:5432/db"},
		{"redis://:pass@cache:6379/0", "redis://:****@cache:6379/0"},
		{"postgres://u:p@ss@host/db", "postgres://u:****@host/db"},
		{"postgres://u:${PG_PASS}@host/db", "postgres://u:${PG_PASS}@host/db"},
		{"a://u:x@h1,b://v:y@h2", "a://u:****@h1,b://v:****@h2"},
		{"host=db user=app password=s3cret dbname=x", "host=db user=app password=**** dbname=x"},
		{`host=db password = 'it\'s secret' dbname=x`, "host=db password = **** dbname=x"},
		{"host=db PASSWORD=s3cret", "host=db PASSWORD=****"},
		{"host=db password=${PG_PASS}", "host=db password=${PG_PASS}"},
		{"postgres://h/db?sslmode=require&password=s3cret", "postgres://h/db?sslmode=require&password=****"},
		{`org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="s3cret";`,
			`org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password=****;`},
		{"no secrets here", "no secrets here"},
		{"topic=orders", "topic=orders"},
	} {
		if got := maskString(tc.in); got != tc.want {
			t.Errorf("maskString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSecretKey(t *testing.T) {
	for key, want := range map[string]bool{
		"password": true, "sasl.password": true, "Password": true, "client_secret": true, "clientSecret": true,
		"token": true, "access-token": true, "api_key": true, "apiKey": true, "credentials": true,
		"private_key": true, "sasl.jaas.config": true, "passwd": true,
		"dsn": false, "topic": false, "url": false, "transaction.timeout": false, "name": false, "user": false,
	} {
		if got := secretKey(key); got != want {
			t.Errorf("secretKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestRenderConfigMasks(t *testing.T) {
	raw := `{"name": "x", "sink": {"type": "postgres", "dsn": "postgres://u:p@h/d", "password": "p",
		"auth": {"token": 12345, "nested": {"user": "u"}}, "secret": ["a", {"b": "c"}], "api_key": null,
		"sasl.password": "${SASL_PASSWORD}"}, "count": 1.50}`
	want := `{"name":"x","sink":{"type":"postgres","dsn":"postgres://u:****@h/d","password":"****",` +
		`"auth":{"token":"****","nested":{"user":"u"}},"secret":["****",{"b":"****"}],"api_key":null,` +
		`"sasl.password":"${SASL_PASSWORD}"},"count":1.50}`
	got, err := renderConfig(config.Connector{Name: "x"}, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("renderConfig =\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(got) {
		t.Error("not JSON")
	}
}

// TestRenderConfigShowsReferences: a secret given as ${VAR} or
// ${file:/path} is shown as the reference (it names where the secret is,
// not what it is); a literal or a default is masked.
func TestRenderConfigShowsReferences(t *testing.T) {
	raw := `{"name": "x", "sink": {"type": "postgres",
		"password": "${file:/run/secrets/pg}", "token": "${TOKEN}", "secret": "${S:literal}",
		"dsn": "host=db password=${file:/run/secrets/pg} dbname=d", "url": "postgres://u:${file:/run/s}@h/d",
		"api_key": "file:/run/secrets/k"}}`
	want := `{"name":"x","sink":{"type":"postgres",` +
		`"password":"${file:/run/secrets/pg}","token":"${TOKEN}","secret":"****",` +
		`"dsn":"host=db password=${file:/run/secrets/pg} dbname=d","url":"postgres://u:${file:/run/s}@h/d",` +
		`"api_key":"****"}}`
	got, err := renderConfig(config.Connector{Name: "x"}, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("renderConfig =\n%s\nwant\n%s", got, want)
	}
}
