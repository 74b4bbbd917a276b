// Package fuzztest keeps fuzz targets whose inputs are kilobytes (tar
// archives, YAML files) and whose executions touch files running at the
// fuzzer's normal speed.
//
// Go minimizes every input that finds new coverage before it counts it,
// and the minimizer's byte-subset pass is quadratic in the input's length:
// for a 4 KiB input it never finishes, so each new input costs the whole
// -fuzzminimizetime (60 s by default) and such a target reports a handful
// of executions per minute. On a journaled disk under load each execution
// that creates and removes a tree also costs milliseconds (rmdir waits on
// the journal); tmpfs costs microseconds.
package fuzztest

import (
	"flag"
	"os"
	"syscall"
	"testing"
)

// MinimizeTime is the default Main gives -fuzzminimizetime.
const MinimizeTime = "2s"

// Main runs the tests with -fuzzminimizetime shortened to MinimizeTime
// unless it is given; call it from TestMain.
func Main(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		_ = flag.Set("test.fuzzminimizetime", MinimizeTime)
	}
	os.Exit(m.Run())
}

// Scratch returns a directory for fuzz executions to write in: on
// /dev/shm when it is a tmpfs, else the fuzz target's TempDir. It is
// removed when the target finishes.
func Scratch(f *testing.F) string {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if syscall.Statfs("/dev/shm", &st) == nil && st.Type == tmpfsMagic {
		if d, err := os.MkdirTemp("/dev/shm", "strata-fuzz-"); err == nil {
			f.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return f.TempDir()
}
