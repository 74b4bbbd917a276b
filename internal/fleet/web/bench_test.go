package web

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/omaha"
)

// BenchmarkCheckNoupdate measures the handler's cost of one update check
// from a node already on the channel's version (no network).
func BenchmarkCheckNoupdate(b *testing.B) {
	t := &testing.T{}
	h := newHarness(t, b.TempDir()+"/f.db")
	h.setup(t, fleet.DefaultPolicy())
	bodies := make([][]byte, 1000)
	for i := range bodies {
		var buf bytes.Buffer
		buf.WriteString(xml.Header)
		_ = xml.NewEncoder(&buf).Encode(omaha.UpdateEngineRequest(osAppID, "2.0.0", "stable", fmt.Sprintf("m%05d", i), ""))
		bodies[i] = buf.Bytes()
	}
	for _, body := range bodies {
		rec := httptest.NewRecorder()
		h.srv.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/update", bytes.NewReader(body)))
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.srv.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/update", bytes.NewReader(bodies[i%len(bodies)])))
			if rec.Code != 200 {
				b.Fatal(rec.Code)
			}
			i++
		}
	})
}
