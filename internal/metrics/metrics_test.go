package metrics

import (
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads the registry's output with Prometheus' own text parser.
func parse(t *testing.T, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the output: %v\n%s", err, b.String())
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestExposition(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("jobs_total", "Jobs done.\nSecond line with a \\ backslash.")
	cv := r.NewCounterVec("checks_total", "Checks by result.", "result", "app")
	h := r.NewHistogramVec("latency_seconds", "Latency.", []float64{0.5, 0.1, 1}, "endpoint")
	r.NewGaugeFunc("instances", "Instances.", func() []Sample {
		return []Sample{{Labels{"version": "1.0", "app": `a"b\c` + "\n"}, 3}, {Labels{"version": "2.0", "app": "x"}, 0.25}}
	})
	r.RegisterRuntime()

	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.Inc()
				cv.WithLabelValues("granted", "os").Inc()
				h.WithLabelValues("omaha").Observe(0.1) // on a bound: counts as ≤ 0.1
			}
		}()
	}
	wg.Wait()
	cv.WithLabelValues("noupdate", "os").Add(2.5)
	h.WithLabelValues("omaha").Observe(0.7)
	h.WithLabelValues("omaha").Observe(9)

	fams := parse(t, r)
	if got := fams["jobs_total"].GetMetric()[0].GetCounter().GetValue(); got != 8000 {
		t.Errorf("jobs_total %v", got)
	}
	if got := fams["jobs_total"].GetHelp(); got != "Jobs done.\nSecond line with a \\ backslash." {
		t.Errorf("help %q", got)
	}
	byResult := map[string]float64{}
	for _, m := range fams["checks_total"].GetMetric() {
		byResult[label(m, "result")] = m.GetCounter().GetValue()
		if label(m, "app") != "os" {
			t.Errorf("app label %q", label(m, "app"))
		}
	}
	if byResult["granted"] != 8000 || byResult["noupdate"] != 2.5 {
		t.Errorf("checks_total %v", byResult)
	}
	hist := fams["latency_seconds"].GetMetric()[0].GetHistogram()
	if hist.GetSampleCount() != 8002 || hist.GetSampleSum() < 809.6 || hist.GetSampleSum() > 809.8 {
		t.Errorf("histogram count %d sum %v", hist.GetSampleCount(), hist.GetSampleSum())
	}
	want := map[float64]uint64{0.1: 8000, 0.5: 8000, 1: 8001, math.Inf(1): 8002}
	for _, b := range hist.GetBucket() {
		if b.GetCumulativeCount() != want[b.GetUpperBound()] {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
	apps := map[string]float64{}
	for _, m := range fams["instances"].GetMetric() {
		apps[label(m, "app")] = m.GetGauge().GetValue()
	}
	if apps["a\"b\\c\n"] != 3 || apps["x"] != 0.25 {
		t.Errorf("gauge series %v", apps)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if rss := fams["process_resident_memory_bytes"].GetMetric()[0].GetGauge().GetValue(); rss < 1<<20 {
		t.Errorf("resident memory %v bytes", rss)
	}

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); ct != ContentType || !strings.Contains(rec.Body.String(), "# TYPE latency_seconds histogram") {
		t.Errorf("handler: %q %q", ct, rec.Body.String()[:80])
	}
}
