// Package utmp reads the login records in utmp and warns the users logged
// in on terminals before the node agent reboots, as locksmithd does
// ("System reboot in 5 minutes!", then a delay when anyone is logged in).
//
// Parse is pure and bounded; Broadcast is the thin effect that writes to
// the terminals.
package utmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/limitread"
)

// recordSize is glibc's struct utmp on 64-bit Linux (x86-64, arm64):
// type, pid, line[32], id[4], user[32], host[256], exit, session, tv,
// addr_v6[4], reserved[20].
const recordSize = 384

// userProcess is ut_type USER_PROCESS: a logged-in user. locksmithd warns
// every record whose line opens, getty's LOGIN_PROCESS included, so an
// idle console delays its reboot by five minutes; only real logins count
// here.
const userProcess = 7

// MaxFile bounds the utmp read: it holds one record per terminal.
const MaxFile = 1 << 20

// Login is one logged-in user on a terminal.
type Login struct {
	User string
	Line string // the terminal below /dev, e.g. pts/0 or tty1
	Host string
	PID  int32
}

// Parse reads utmp records and returns the USER_PROCESS ones whose
// terminal name is a safe path below /dev. A trailing partial record (a
// file being written) is ignored.
func Parse(b []byte) []Login {
	var out []Login
	for off := 0; off+recordSize <= len(b); off += recordSize {
		r := b[off : off+recordSize]
		if int16(binary.LittleEndian.Uint16(r[0:2])) != userProcess {
			continue
		}
		l := Login{
			PID:  int32(binary.LittleEndian.Uint32(r[4:8])),
			Line: cstring(r[8:40]),
			User: cstring(r[44:76]),
			Host: cstring(r[76:332]),
		}
		if !safeLine(l.Line) {
			continue
		}
		out = append(out, l)
	}
	return out
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// safeLine accepts terminal names like tty1 or pts/3: a record is not
// trusted to name a path outside /dev.
func safeLine(line string) bool {
	if line == "" || strings.HasPrefix(line, "/") || strings.Contains(line, "\\") {
		return false
	}
	return filepath.Clean(line) == line && line != ".." && !strings.HasPrefix(line, "../")
}

// Read returns the logins recorded in root's /run/utmp (or /var/run/utmp).
// A missing file is no logins.
func Read(root string) ([]Login, error) {
	for _, p := range []string{"run/utmp", "var/run/utmp"} {
		f, err := os.Open(filepath.Join(root, p))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read logins: %w", err)
		}
		b, err := limitread.ReadAll(f, MaxFile)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read logins from %s: %w", f.Name(), err)
		}
		return Parse(b), nil
	}
	return nil, nil
}

// Message is the text written to each terminal.
func Message(from string, at time.Time, msg string) string {
	return fmt.Sprintf("\r\nBroadcast message from %s at %s:\r\n%s\r\n\r\n", from, at.Format(time.RFC1123), msg)
}

// Broadcast writes text to the terminal of each login below devDir
// (normally /dev) and returns how many terminals it reached. A terminal
// that does not open or blocks is skipped, not waited for.
func Broadcast(devDir string, logins []Login, text string) int {
	n := 0
	seen := map[string]bool{}
	for _, l := range logins {
		if seen[l.Line] {
			continue
		}
		seen[l.Line] = true
		f, err := os.OpenFile(filepath.Join(devDir, l.Line), os.O_WRONLY|os.O_APPEND|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if _, err := io.WriteString(f, text); err == nil {
			n++
		}
		f.Close()
	}
	return n
}
