package vm

import (
	"os"

	"github.com/stratalinux/strata/internal/flake/vm/fdutil"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// termSize is the host terminal's size (stdout's, else stdin's); 0, 0
// when neither is a terminal.
func (e *Engine) termSize() (rows, cols int) {
	for _, f := range []*os.File{e.Stdout, e.Stdin} {
		if f == nil {
			continue
		}
		var ws *unix.Winsize
		err := fdutil.Control(f, func(fd int) (err error) {
			ws, err = unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
			return err
		})
		if err == nil && ws.Row > 0 && ws.Col > 0 {
			return int(ws.Row), int(ws.Col)
		}
	}
	return 0, 0
}

// makeRaw puts the terminal f in raw mode and returns what restores it.
func makeRaw(f *os.File) (restore func(), err error) {
	var old *term.State
	if err := fdutil.Control(f, func(fd int) (err error) {
		old, err = term.MakeRaw(fd)
		return err
	}); err != nil {
		return nil, err
	}
	return func() {
		_ = fdutil.Control(f, func(fd int) error { return term.Restore(fd, old) })
	}, nil
}
