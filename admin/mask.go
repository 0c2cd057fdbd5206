package admin

import (
	"regexp"
	"strings"
)

// masked replaces a secret in every response.
const masked = "****"

// secretKeyWords mark a config key whose value is a secret: the key,
// lowercased with separators removed, contains one of them
// ("sasl.password", "api_key", "clientSecret", "sasl.jaas.config").
var secretKeyWords = []string{"password", "passwd", "secret", "token", "credential", "apikey", "privatekey", "jaas"}

// envRef is a value that only names where a secret comes from: an
// environment variable, "${PG_PASS}", or an absolute file path,
// "${file:/run/secrets/pg}". It reveals no secret, and showing it lets a
// config read back from the API be sent again unchanged. ${NAME:default} is
// masked: its default may be the secret itself.
var envRef = regexp.MustCompile(`^\$\{(?:[A-Za-z_][A-Za-z0-9_]*|file:/[^}]*)\}$`)

// urlPassword matches the password in a URL's userinfo,
// scheme://user:PASSWORD@host. The password runs to the last '@' before
// the path, so one containing an unescaped '@' is still masked whole.
var urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)([^/\s]*)@`)

// keywordPassword matches password=VALUE in a keyword/value DSN
// ("host=db password=x"), a URL query or a JAAS line, VALUE quoted or up to
// the next space.
var keywordPassword = regexp.MustCompile(`(?i)((?:\b|ssl)(?:password|passwd|pwd)\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s"']+)`)

// mask returns v, a decoded JSON value (object, []any, scalars), with its
// secrets replaced: every value under a secret-looking key, and the
// password part of connection strings anywhere.
func mask(v any) any {
	switch v := v.(type) {
	case object:
		out := make(object, len(v))
		for i, m := range v {
			if secretKey(m.Key) {
				out[i] = member{Key: m.Key, Value: maskAll(m.Value)}
			} else {
				out[i] = member{Key: m.Key, Value: mask(m.Value)}
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = mask(e)
		}
		return out
	case string:
		return maskString(v)
	}
	return v
}

// maskAll masks every scalar in v, which sits under a secret key.
func maskAll(v any) any {
	switch v := v.(type) {
	case object:
		out := make(object, len(v))
		for i, m := range v {
			out[i] = member{Key: m.Key, Value: maskAll(m.Value)}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = maskAll(e)
		}
		return out
	case string:
		if envRef.MatchString(v) {
			return v
		}
	case nil:
		return nil // an unset secret reveals nothing
	}
	return masked
}

func secretKey(key string) bool {
	k := strings.Map(func(r rune) rune {
		switch r {
		case '.', '_', '-', ' ':
			return -1
		}
		return r
	}, strings.ToLower(key))
	for _, w := range secretKeyWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// maskString masks the passwords of connection strings in s: URL userinfo
// and keyword=value passwords. Passwords given as ${VAR} stay.
// MaskTrace hides the passwords an error text may quote (a DSN or URL from
// the config), as every status answer does; a member publishes its
// tasks' traces to the status topic through it.
func MaskTrace(s string) string { return maskString(s) }

func maskString(s string) string {
	if strings.Contains(s, "://") {
		s = urlPassword.ReplaceAllStringFunc(s, func(m string) string {
			sub := urlPassword.FindStringSubmatch(m)
			if envRef.MatchString(sub[2]) {
				return m
			}
			return sub[1] + masked + "@"
		})
	}
	if strings.Contains(s, "=") {
		s = keywordPassword.ReplaceAllStringFunc(s, func(m string) string {
			sub := keywordPassword.FindStringSubmatch(m)
			if envRef.MatchString(strings.Trim(sub[2], `'"`)) {
				return m
			}
			return sub[1] + masked
		})
	}
	return s
}
