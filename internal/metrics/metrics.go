// Package metrics keeps counters, histograms and gauges and writes them
// in Prometheus' text exposition format (version 0.0.4), with the Go
// runtime and process series Prometheus users expect.
//
// It replaces prometheus/client_golang, whose package initialisers (a
// default registry with collectors, protobuf descriptors) cost every
// invocation of the multi-call binary about a millisecond — node-side
// commands included, which never serve metrics. The format is small and
// stable; the tests parse the output with Prometheus' own parser.
package metrics

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families in registration order.
type Registry struct {
	mu       sync.Mutex
	families []family
}

// family is anything that writes one or more metric families.
type family interface {
	write(w *bufio.Writer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(f family) {
	r.mu.Lock()
	r.families = append(r.families, f)
	r.mu.Unlock()
}

// WriteText writes every family in the text format.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	fams := append([]family(nil), r.families...)
	r.mu.Unlock()
	bw := bufio.NewWriter(w)
	for _, f := range fams {
		f.write(bw)
	}
	return bw.Flush()
}

// ContentType is the text format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the registry.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		_ = r.WriteText(w)
	})
}

// Labels are a series' label values, by name.
type Labels map[string]string

func header(w *bufio.Writer, name, help, typ string) {
	w.WriteString("# HELP ")
	w.WriteString(name)
	w.WriteByte(' ')
	w.WriteString(escapeHelp(help))
	w.WriteString("\n# TYPE ")
	w.WriteString(name)
	w.WriteByte(' ')
	w.WriteString(typ)
	w.WriteByte('\n')
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

// sample writes one line: name{labels} value. extra is an additional
// label (le) written last, as Prometheus does.
func sample(w *bufio.Writer, name string, labels Labels, extraName, extraValue string, v float64) {
	w.WriteString(name)
	if len(labels) > 0 || extraName != "" {
		names := make([]string, 0, len(labels))
		for k := range labels {
			names = append(names, k)
		}
		sort.Strings(names)
		w.WriteByte('{')
		for i, k := range names {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(k)
			w.WriteString(`="`)
			w.WriteString(labelEscaper.Replace(labels[k]))
			w.WriteByte('"')
		}
		if extraName != "" {
			if len(names) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(extraName)
			w.WriteString(`="`)
			w.WriteString(extraValue)
			w.WriteByte('"')
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Counter is a monotonically increasing value.
type Counter struct{ bits atomic.Uint64 }

// Add adds v (≥ 0).
func (c *Counter) Add(v float64) {
	for {
		old := c.bits.Load()
		if c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Value is the current count.
func (c *Counter) Value() float64 { return math.Float64frombits(c.bits.Load()) }

type counterFamily struct {
	name, help string
	c          *Counter
}

func (f *counterFamily) write(w *bufio.Writer) {
	header(w, f.name, f.help, "counter")
	sample(w, f.name, nil, "", "", f.c.Value())
}

// NewCounter registers a counter without labels.
func (r *Registry) NewCounter(name, help string) *Counter {
	c := &Counter{}
	r.add(&counterFamily{name, help, c})
	return c
}

// vec keeps one child per label-value combination.
type vec[T any] struct {
	name, help string
	labels     []string
	mu         sync.RWMutex
	children   map[string]*child[T]
	make       func() *T
}

type child[T any] struct {
	labels Labels
	v      *T
}

func (v *vec[T]) with(values []string) *T {
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	c := v.children[key]
	v.mu.RUnlock()
	if c != nil {
		return c.v
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c = v.children[key]; c == nil {
		l := Labels{}
		for i, n := range v.labels {
			if i < len(values) {
				l[n] = values[i]
			}
		}
		c = &child[T]{labels: l, v: v.make()}
		v.children[key] = c
	}
	return c.v
}

// sorted returns the children in label order (stable output).
func (v *vec[T]) sorted() []*child[T] {
	v.mu.RLock()
	keys := make([]string, 0, len(v.children))
	for k := range v.children {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*child[T], 0, len(keys))
	for _, k := range keys {
		out = append(out, v.children[k])
	}
	v.mu.RUnlock()
	return out
}

// CounterVec is a counter per label-value combination.
type CounterVec struct{ v *vec[Counter] }

// NewCounterVec registers a labelled counter.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	cv := &CounterVec{&vec[Counter]{name: name, help: help, labels: labels, children: map[string]*child[Counter]{}, make: func() *Counter { return &Counter{} }}}
	r.add(cv)
	return cv
}

// WithLabelValues returns the counter of these label values, in the
// order the labels were declared.
func (cv *CounterVec) WithLabelValues(values ...string) *Counter { return cv.v.with(values) }

func (cv *CounterVec) write(w *bufio.Writer) {
	header(w, cv.v.name, cv.v.help, "counter")
	for _, c := range cv.v.sorted() {
		sample(w, cv.v.name, c.labels, "", "", c.v.Value())
	}
}

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	bounds []float64
	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound ≥ v
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.n++
	h.mu.Unlock()
}

// HistogramVec is a histogram per label-value combination.
type HistogramVec struct {
	v      *vec[Histogram]
	bounds []float64
}

// NewHistogramVec registers a labelled histogram with these upper bounds
// (ascending; +Inf is implied).
func (r *Registry) NewHistogramVec(name, help string, bounds []float64, labels ...string) *HistogramVec {
	b := append([]float64(nil), bounds...)
	sort.Float64s(b)
	hv := &HistogramVec{bounds: b}
	hv.v = &vec[Histogram]{name: name, help: help, labels: labels, children: map[string]*child[Histogram]{},
		make: func() *Histogram { return &Histogram{bounds: b, counts: make([]uint64, len(b)+1)} }}
	r.add(hv)
	return hv
}

// WithLabelValues returns the histogram of these label values.
func (hv *HistogramVec) WithLabelValues(values ...string) *Histogram { return hv.v.with(values) }

func (hv *HistogramVec) write(w *bufio.Writer) {
	name := hv.v.name
	header(w, name, hv.v.help, "histogram")
	for _, c := range hv.v.sorted() {
		h := c.v
		h.mu.Lock()
		counts, sum, n := append([]uint64(nil), h.counts...), h.sum, h.n
		h.mu.Unlock()
		var cum uint64
		for i, b := range hv.bounds {
			cum += counts[i]
			sample(w, name+"_bucket", c.labels, "le", formatFloat(b), float64(cum))
		}
		sample(w, name+"_bucket", c.labels, "le", "+Inf", float64(n))
		sample(w, name+"_sum", c.labels, "", "", sum)
		sample(w, name+"_count", c.labels, "", "", float64(n))
	}
}

// Sample is one series of a gauge collected at scrape time.
type Sample struct {
	Labels Labels
	Value  float64
}

type gaugeFunc struct {
	name, help string
	collect    func() []Sample
}

func (g *gaugeFunc) write(w *bufio.Writer) {
	header(w, g.name, g.help, "gauge")
	for _, s := range g.collect() {
		sample(w, g.name, s.Labels, "", "", s.Value)
	}
}

// NewGaugeFunc registers a gauge whose series collect returns at each
// scrape.
func (r *Registry) NewGaugeFunc(name, help string, collect func() []Sample) {
	r.add(&gaugeFunc{name, help, collect})
}
