package flake

import (
	"testing"

	"github.com/stratalinux/strata/internal/testutil/fuzztest"
)

// TestMain shortens the fuzzer's minimization (see fuzztest): FuzzRegistry
// takes three YAML files and stalled a minute on each new input.
func TestMain(m *testing.M) { fuzztest.Main(m) }
