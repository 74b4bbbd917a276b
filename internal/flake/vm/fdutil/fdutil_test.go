package fdutil

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestControlKeepsDeadlinesWorking(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var seen int
	if err := Control(r, func(fd int) error {
		seen = fd
		// The descriptor is live: fstat on it succeeds.
		var st syscall.Stat_t
		return syscall.Fstat(fd, &st)
	}); err != nil {
		t.Fatalf("Control: %v", err)
	}
	if seen <= 2 {
		t.Fatalf("fn got descriptor %d, want the pipe's", seen)
	}
	// f.Fd() would have made the pipe blocking and this deadline a no-op
	// (the read would hang); through Control it still fires.
	if err := r.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatalf("SetReadDeadline after Control: %v", err)
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Control = %v, want a deadline error", err)
	}
}

func TestControlReturnsErrors(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := errors.New("from fn")
	if err := Control(r, func(int) error { return want }); !errors.Is(err, want) {
		t.Fatalf("Control = %v, want fn's error", err)
	}
	r.Close()
	called := false
	if err := Control(r, func(int) error { called = true; return nil }); err == nil || called {
		t.Fatalf("Control on a closed file = %v (fn called %v), want an error and no call", err, called)
	}
}
