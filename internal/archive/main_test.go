package archive

import (
	"flag"
	"os"
	"testing"
)

// TestMain shortens the fuzzer's minimization of new inputs (unless
// -fuzzminimizetime is given). Go minimizes every input that finds new
// coverage before counting it, and its byte-subset pass is quadratic in
// the input's length: a tar of a few KiB never finishes, so each new
// input costs the full default of 60 s and FuzzExtractTar reported a few
// executions per minute. The inputs are kept as found instead.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		_ = flag.Set("test.fuzzminimizetime", "2s")
	}
	os.Exit(m.Run())
}
