package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// expandEnv replaces ${NAME} and ${NAME:default} in s with the environment
// variable's value, and ${file:/path} with the file's content (see
// readSecretFile). The default is used when the variable is unset or empty,
// as in Benthos and the shell's ${NAME:-default}: an empty secret is almost
// always a deployment mistake, and a default is the user saying what to use
// instead. "$${" writes a literal "${" (for values such as shell snippets that
// contain one). Every bad reference in s is reported, not just the first.
func expandEnv(s string) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var (
		b    strings.Builder
		errs []string
	)
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), errs
		}
		if i > 0 && s[i-1] == '$' {
			// "$${" is an escaped "${": keep one "$" and the brace.
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			errs = append(errs, fmt.Sprintf("unterminated ${ in %q (write $${ for a literal ${)", s[i:]))
			return b.String(), errs
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":")
		if name == fileRefPrefix && hasDef {
			val, err := readSecretFile(def)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			b.WriteString(val)
			continue
		}
		if !validEnvName(name) {
			errs = append(errs, fmt.Sprintf("invalid environment variable reference ${%s} (want ${NAME} or ${NAME:default})", ref))
			continue
		}
		val, ok := os.LookupEnv(name)
		switch {
		case hasDef && val == "":
			val = def
		case !ok:
			errs = append(errs, fmt.Sprintf("environment variable %s is not set (use ${%s:default} for a default)", name, name))
		}
		b.WriteString(val)
	}
}

// fileRefPrefix introduces a file reference, ${file:/path}: the value is
// the file's content. It takes the place of an environment variable named
// "file" with a default, which no one writes on purpose.
const fileRefPrefix = "file"

// readSecretFile is the value of ${file:path}: the file's content with one
// trailing newline removed, because secret files (Kubernetes Secret
// volumes, `echo secret > file`) usually end with one that is not part of
// the secret. The path must be absolute: a relative one would be resolved
// against the daemon's working directory, not the config file's, which is
// rarely what its author meant. Errors name the path and the cause, never
// any of the content.
func readSecretFile(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("${file:%s}: the path must be absolute", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in the message
		}
		return "", fmt.Errorf("${file:%s}: cannot read the file: %v", path, err)
	}
	s := string(data)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	return s, nil
}

// validEnvName accepts POSIX shell variable names.
func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
