package utmp

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func record(typ int16, pid int32, line, user, host string) []byte {
	r := make([]byte, recordSize)
	binary.LittleEndian.PutUint16(r[0:2], uint16(typ))
	binary.LittleEndian.PutUint32(r[4:8], uint32(pid))
	copy(r[8:40], line)
	copy(r[44:76], user)
	copy(r[76:332], host)
	return r
}

// TestParseUtmpdump reads records written by util-linux's utmpdump, the
// peer writer of the format, so the offsets are glibc's and not ours.
func TestParseUtmpdump(t *testing.T) {
	if _, err := exec.LookPath("utmpdump"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("utmpdump (util-linux) is missing: run scripts/deps test")
		}
		t.Skip("utmpdump not installed")
	}
	text := "[7] [01234] [ts/0] [alice   ] [pts/0       ] [10.0.0.5            ] [10.0.0.5       ] [2026-12-03T12:00:00,000000+00:00]\n" +
		"[6] [00555] [tty1] [LOGIN   ] [tty1        ] [                    ] [0.0.0.0        ] [2026-12-03T12:00:00,000000+00:00]\n" +
		"[2] [00000] [~~  ] [reboot  ] [~           ] [6.1.0               ] [0.0.0.0        ] [2026-12-03T11:00:00,000000+00:00]\n" +
		"[7] [04321] [tty2] [bob     ] [tty2        ] [                    ] [0.0.0.0        ] [2026-12-03T12:01:00,000000+00:00]\n"
	cmd := exec.Command("utmpdump", "-r")
	cmd.Stdin = strings.NewReader(text)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("utmpdump -r: %v: %s", err, errb.String())
	}
	if out.Len() != 4*recordSize {
		t.Fatalf("utmpdump wrote %d bytes, want 4 records of %d", out.Len(), recordSize)
	}
	got := Parse(out.Bytes())
	want := []Login{
		{User: "alice", Line: "pts/0", Host: "10.0.0.5", PID: 1234},
		{User: "bob", Line: "tty2", Host: "", PID: 4321},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Parse = %+v, want %+v (getty and boot records are not logins)", got, want)
	}
}

func TestParseRefusesLinesOutsideDev(t *testing.T) {
	var b []byte
	for _, line := range []string{"../etc/passwd", "/etc/shadow", "..", "pts/../../x", "pts/1"} {
		b = append(b, record(userProcess, 1, line, "u", "")...)
	}
	b = append(b, 1, 2, 3) // a partial record being written
	got := Parse(b)
	if len(got) != 1 || got[0].Line != "pts/1" {
		t.Fatalf("Parse = %+v, want only pts/1", got)
	}
}

func TestReadAndBroadcast(t *testing.T) {
	root := t.TempDir()
	if l, err := Read(root); err != nil || l != nil {
		t.Fatalf("no utmp: %v, %v; want no logins", l, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	recs := append(record(userProcess, 10, "pts/0", "alice", ""), record(userProcess, 11, "pts/7", "carol", "")...)
	recs = append(recs, record(userProcess, 12, "pts/0", "alice", "")...) // second session, same terminal
	if err := os.WriteFile(filepath.Join(root, "run/utmp"), recs, 0o644); err != nil {
		t.Fatal(err)
	}
	logins, err := Read(root)
	if err != nil || len(logins) != 3 {
		t.Fatalf("Read = %+v, %v", logins, err)
	}
	// Terminals stand in as files; pts/7 does not exist (a stale record).
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(filepath.Join(dev, "pts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "pts/0"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	text := Message("strata agent", time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC), "System reboot in 5 minutes!")
	if n := Broadcast(dev, logins, text); n != 1 {
		t.Fatalf("Broadcast reached %d terminals, want 1", n)
	}
	b, _ := os.ReadFile(filepath.Join(dev, "pts/0"))
	if string(b) != text || !strings.Contains(text, "System reboot in 5 minutes!") {
		t.Fatalf("terminal got %q", b)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(record(userProcess, 1, "pts/0", "a", "h"))
	f.Add([]byte{7, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, l := range Parse(b) {
			if !safeLine(l.Line) {
				t.Fatalf("unsafe line %q", l.Line)
			}
		}
	})
}
