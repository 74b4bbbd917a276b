package vm

import (
	"encoding/json"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The host side of a TTY session, against a guest that crashes: the
// request carries the terminal's size, the terminal is raw during the
// session, a SIGWINCH becomes a resize frame, and the terminal's settings
// are back when the launch fails.
func TestTTYSessionRestoresTerminal(t *testing.T) {
	_, pts := openPTY(t)
	setSize(t, pts, 33, 111)
	before, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	host, guest := net.Pipe()
	defer host.Close()
	e := &Engine{Stdin: pts, Stdout: pts, Stderr: pts}
	req := Request{Argv: []string{"/bin/sh"}, TTY: true}
	req.Rows, req.Cols = e.termSize()

	type seen struct {
		req        Request
		lflag      uint32
		rows, cols int
		err        error
	}
	got := make(chan seen, 1)
	go func() {
		var s seen
		defer func() { guest.Close(); got <- s }() // the "VM" dies
		typ, p, err := ReadFrame(guest)
		if err != nil || typ != FrameRun {
			s.err = err
			return
		}
		json.Unmarshal(p, &s.req)
		tio, _ := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
		s.lflag = tio.Lflag
		unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120})
		syscall.Kill(os.Getpid(), syscall.SIGWINCH)
		for {
			typ, p, err := ReadFrame(guest)
			if err != nil {
				s.err = err
				return
			}
			if typ == FrameResize {
				s.rows, s.cols, s.err = DecodeWinsize(p)
				return
			}
		}
	}()
	_, err = e.session(host, QemuPlan{Console: "/nonexistent"}, req)
	s := <-got
	if err == nil || !strings.Contains(err.Error(), "without reporting an exit code") {
		t.Fatalf("a dead guest: %v", err)
	}
	if s.err != nil || !s.req.TTY || s.req.Rows != 33 || s.req.Cols != 111 {
		t.Fatalf("request %+v, %v", s.req, s.err)
	}
	if s.lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
		t.Fatalf("the terminal was not raw during the session: lflag %#x", s.lflag)
	}
	if s.rows != 40 || s.cols != 120 {
		t.Fatalf("resize frame %d×%d, want 40×120", s.rows, s.cols)
	}
	after, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Fatalf("terminal not restored: lflag %#x before, %#x after", before.Lflag, after.Lflag)
	}
}
