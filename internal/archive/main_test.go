package archive

import (
	"testing"

	"github.com/stratalinux/strata/internal/testutil/fuzztest"
)

// TestMain shortens the fuzzer's minimization (see fuzztest): with the
// default, FuzzExtractTar reported a few executions per minute.
func TestMain(m *testing.M) { fuzztest.Main(m) }
