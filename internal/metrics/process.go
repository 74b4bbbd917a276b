package metrics

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// runtimeFamily writes the Go runtime and process series under the names
// client_golang's default collectors use, so dashboards built for them
// keep working.
type runtimeFamily struct{ pageSize float64 }

// RegisterRuntime adds go_* and process_* series.
func (r *Registry) RegisterRuntime() { r.add(&runtimeFamily{pageSize: float64(os.Getpagesize())}) }

func (f *runtimeFamily) write(w *bufio.Writer) {
	gauge := func(name, help string, v float64) {
		header(w, name, help, "gauge")
		sample(w, name, nil, "", "", v)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	header(w, "go_info", "Information about the Go environment.", "gauge")
	sample(w, "go_info", Labels{"version": runtime.Version()}, "", "", 1)
	gauge("go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use.", float64(ms.HeapAlloc))
	gauge("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", float64(ms.HeapInuse))
	gauge("go_memstats_sys_bytes", "Number of bytes obtained from system.", float64(ms.Sys))
	header(w, "go_gc_cycles_total", "Number of completed GC cycles.", "counter")
	sample(w, "go_gc_cycles_total", nil, "", "", float64(ms.NumGC))
	gauge("go_threads", "Number of OS threads created.", float64(threads()))

	if st, ok := procStat(); ok {
		header(w, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter")
		sample(w, "process_cpu_seconds_total", nil, "", "", st.cpu)
		gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", st.vsize)
		gauge("process_resident_memory_bytes", "Resident memory size in bytes.", st.rss*f.pageSize)
		if st.start > 0 {
			gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", st.start)
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		gauge("process_open_fds", "Number of open file descriptors.", float64(len(ents)))
	}
	if n, ok := maxFDs(); ok {
		gauge("process_max_fds", "Maximum number of open file descriptors.", n)
	}
}

type stat struct{ cpu, vsize, rss, start float64 }

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat reads /proc/self/stat (fields after the parenthesised name:
// utime 14, stime 15, starttime 22, vsize 23, rss 24).
func procStat() (stat, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return stat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return stat{}, false
	}
	num := func(k int) float64 { v, _ := strconv.ParseFloat(f[k-3], 64); return v }
	s := stat{cpu: (num(14) + num(15)) / clockTicks, vsize: num(23), rss: num(24)}
	if boot, ok := bootTime(); ok {
		s.start = boot + num(22)/clockTicks
	}
	return s, true
}

func bootTime() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n, err == nil
		}
	}
	return float64(time.Now().Unix()), false
}

func maxFDs() (float64, bool) {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(strings.TrimPrefix(line, "Max open files"))
			if len(f) > 0 {
				n, err := strconv.ParseFloat(f[0], 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

func threads() int {
	n, _ := runtime.ThreadCreateProfile(nil)
	return n
}
