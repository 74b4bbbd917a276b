package cli

import (
	"fmt"
	"io"
	"path"
	"sync"
	"time"
)

// progressReader draws a one-line download progress on a terminal.
type progressReader struct {
	mu    sync.Mutex
	w     io.Writer
	name  string
	size  int64
	done  int64
	last  time.Time
	inner io.Reader
}

func newProgressReader(w io.Writer, url string, size int64, r io.Reader) io.Reader {
	return &progressReader{w: w, name: path.Base(url), size: size, inner: r}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.inner.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond || err != nil {
		p.last = now
		if p.size > 0 {
			fmt.Fprintf(p.w, "\r\x1b[K%s %d%% (%d/%d MiB)", p.name, p.done*100/p.size, p.done>>20, p.size>>20)
		} else {
			fmt.Fprintf(p.w, "\r\x1b[K%s %d MiB", p.name, p.done>>20)
		}
		if err != nil {
			fmt.Fprint(p.w, "\n")
		}
	}
	return n, err
}
