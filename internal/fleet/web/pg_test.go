package web

import (
	"testing"

	"github.com/stratalinux/strata/internal/testutil/pgtest"
)

func pgDSN(t *testing.T) string { return pgtest.NewDatabase(t) }
