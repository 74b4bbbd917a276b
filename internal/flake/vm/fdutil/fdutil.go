// Package fdutil runs a function on an *os.File's descriptor without
// f.Fd(), which would switch a pollable file (a pty, a pipe) to blocking
// mode for good and stop its deadlines from working. It is shared by the
// flake VM's host side and its guest init (PID 1), so it imports only the
// standard library.
package fdutil

import "os"

// Control runs fn on f's descriptor and returns fn's error, or the error
// of reaching the descriptor (a closed file, a file without one).
func Control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
