package vm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The framed protocol between the host and Strata's guest init: every
// frame is one type byte, a big-endian uint32 length and that many bytes.
// Output, input and the exit status travel as separate frames, so kernel
// messages (on the serial console, never on this channel) cannot mix in.
const (
	FrameReady  byte = 'Y' // guest → host: the guest init is up
	FrameRun    byte = 'R' // host → guest: JSON Request
	FrameStdin  byte = 'I' // host → guest: stdin bytes; empty = EOF
	FrameSignal byte = 'S' // host → guest: one byte, the signal number
	FrameResize byte = 'W' // host → guest: the terminal's new size (WinsizePayload)
	FrameStdout byte = 'O' // guest → host
	FrameStderr byte = 'E' // guest → host
	FrameExit   byte = 'X' // guest → host: int32 exit code
	FrameError  byte = 'F' // guest → host: the guest could not run the command
)

// MaxFrame bounds one frame's payload.
const MaxFrame = 1 << 20

// OverlayBootArg tells the guest init whether the VM has an overlay disk
// (=1: /dev/vdb, ext4) or none (=0: a tmpfs upper layer, no waiting for
// a disk). Without it the init waits briefly for /dev/vdb.
const OverlayBootArg = "strata.overlay"

// PortName is the virtio-serial port the guest init looks for.
const PortName = "org.strata.flake.0"

// Request is what the guest runs.
type Request struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	// TTY runs the command on a pseudo-terminal in the guest (stdout and
	// stderr then arrive together as FrameStdout). Rows and Cols are the
	// host terminal's size at the start, applied before the command
	// starts so its first look at the size is right; later changes come
	// as FrameResize.
	TTY  bool `json:"tty,omitempty"`
	Rows int  `json:"rows,omitempty"`
	Cols int  `json:"cols,omitempty"`
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(payload), MaxFrame)
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds %d", n, MaxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// ExitPayload encodes an exit code.
func ExitPayload(code int) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(int32(code)))
	return b
}

// DecodeExit decodes an exit code.
func DecodeExit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("exit frame of %d bytes", len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}

// WinsizePayload encodes a terminal size: big-endian uint16 rows, then
// cols.
func WinsizePayload(rows, cols int) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, clampU16(rows))
	binary.BigEndian.PutUint16(b[2:], clampU16(cols))
	return b
}

// DecodeWinsize decodes a FrameResize payload.
func DecodeWinsize(p []byte) (rows, cols int, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("resize frame of %d bytes", len(p))
	}
	return int(binary.BigEndian.Uint16(p)), int(binary.BigEndian.Uint16(p[2:])), nil
}

func clampU16(n int) uint16 {
	switch {
	case n < 0:
		return 0
	case n > 0xffff:
		return 0xffff
	}
	return uint16(n)
}

// FrameWriter turns writes into frames of one type (safe for one writer
// per frame type when w serializes writes).
type FrameWriter struct {
	W   io.Writer
	Typ byte
}

func (f FrameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > 64<<10 {
			chunk = chunk[:64<<10]
		}
		if err := WriteFrame(f.W, f.Typ, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}
