package store

import (
	"net/url"
	"regexp"
	"strings"
)

// pgKeyword matches the start of a libpq keyword/value connection string
// ("host=… user=… password=…").
var pgKeyword = regexp.MustCompile(`(?i)(^|\s)(host|hostaddr|port|dbname|user|password|sslmode|service)\s*=`)

// pgPassword matches a password in a keyword/value connection string,
// quoted ('…', backslash escapes) or not.
var pgPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)

// IsPostgres reports whether dsn names a PostgreSQL database (a
// postgres:// URL or a keyword/value string) rather than an SQLite path.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") || pgKeyword.MatchString(dsn)
}

// RedactDSN hides the password of a connection string (URL user info,
// password= query parameter or keyword) so it can be logged.
func RedactDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			if q := u.Query(); q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
		// Unparsable: keep the scheme and host side only.
		scheme, rest, _ := strings.Cut(dsn, "://")
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			rest = "xxxxx" + rest[i:]
		}
		return scheme + "://" + pgPassword.ReplaceAllString(rest, "${1}xxxxx")
	}
	return pgPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// redactIn removes dsn's password from a message (a driver error may
// quote the connection string).
func redactIn(msg, dsn string) string {
	for _, pw := range passwords(dsn) {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

func passwords(dsn string) []string {
	var out []string
	if u, err := url.Parse(dsn); err == nil && strings.Contains(dsn, "://") {
		if pw, ok := u.User.Password(); ok {
			out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
		if pw := u.Query().Get("password"); pw != "" {
			out = append(out, pw, url.QueryEscape(pw))
		}
	}
	for _, m := range pgPassword.FindAllStringSubmatch(dsn, -1) {
		v := strings.Trim(m[2], "'")
		if len(v) >= 3 { // never blank out short common substrings
			out = append(out, v)
		}
	}
	return out
}

// redactedError is err with a message free of the DSN's password; it
// still unwraps to err.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
