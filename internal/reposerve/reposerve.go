// Package reposerve serves an extension repository directory over HTTP:
// byte ranges (for resumed downloads), ETag and If-Modified-Since, content
// types for images, manifests, signatures and transfer files, and a
// directory index. Every file is opened through os.Root, so neither ".."
// nor a symlink can reach outside the repository. The fleet server mounts
// the same handler beside its own endpoints.
package reposerve

import (
	"errors"
	"fmt"
	"html"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
)

// MaxRanges is the most byte ranges one request may ask for; more are
// answered with the whole file (Apache's MaxRanges does the same at 200).
const MaxRanges = 100

// Handler serves one repository directory.
type Handler struct {
	root *os.Root
	log  *slog.Logger
}

// New opens dir and returns its handler. Close releases the directory.
func New(dir string, log *slog.Logger) (*Handler, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{root: r, log: log}, nil
}

// Close releases the repository directory.
func (h *Handler) Close() error { return h.root.Close() }

// contentType picks the media type by file name.
func contentType(name string) string {
	switch {
	case name == "SHA256SUMS" || strings.HasSuffix(name, ".transfer") || strings.HasSuffix(name, ".conf") || strings.HasSuffix(name, ".feature") || strings.HasSuffix(name, ".txt"):
		return "text/plain; charset=utf-8"
	case strings.HasSuffix(name, ".gpg") || strings.HasSuffix(name, ".sig"):
		return "application/pgp-signature"
	case strings.HasSuffix(name, ".asc"):
		return "application/pgp-keys"
	case strings.HasSuffix(name, ".json"):
		return "application/json"
	case strings.HasSuffix(name, ".tar"):
		return "application/x-tar"
	case strings.HasSuffix(name, ".gz"):
		return "application/gzip"
	case strings.HasSuffix(name, ".xz"):
		return "application/x-xz"
	case strings.HasSuffix(name, ".zst"):
		return "application/zstd"
	case strings.HasSuffix(name, ".html"):
		return "text/html; charset=utf-8"
	}
	return "application/octet-stream"
}

// ServeHTTP answers GET and HEAD.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	clean := path.Clean(p)
	if strings.Contains(p, "\x00") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	rel := strings.TrimPrefix(clean, "/")
	if rel == "" {
		rel = "."
	}
	for _, part := range strings.Split(rel, "/") {
		// Dot files are temporaries of publish ('.#…') and never served.
		if strings.HasPrefix(part, ".") && part != "." {
			http.NotFound(w, r)
			return
		}
	}
	f, err := h.root.Open(rel)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if fi.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, path.Base(clean)+"/", http.StatusMovedPermanently)
			return
		}
		h.index(w, r, f, clean)
		return
	}
	// "/SHA256SUMS/" names a directory; the file is not served there.
	if !fi.Mode().IsRegular() || strings.HasSuffix(r.URL.Path, "/") {
		http.NotFound(w, r)
		return
	}
	if v := r.Header.Get("Range"); v != "" {
		if nv := planRange(v, fi.Size()); nv != v {
			r = r.Clone(r.Context()) // the caller's request stays as sent
			if nv == "" {
				r.Header.Del("Range")
			} else {
				r.Header.Set("Range", nv)
			}
		}
	}
	w.Header().Set("Content-Type", contentType(fi.Name()))
	w.Header().Set("ETag", etag(fi))
	w.Header().Set("Cache-Control", "no-cache")
	// ServeContent handles Range, If-Range, If-None-Match,
	// If-Modified-Since and HEAD.
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// etag identifies a file version by size and modification time (published
// files are never rewritten in place; manifests are replaced by rename).
func etag(fi fs.FileInfo) string {
	return `"` + strconv.FormatInt(fi.Size(), 36) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + `"`
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		http.NotFound(w, r)
	case errors.Is(err, fs.ErrPermission):
		http.Error(w, "forbidden", http.StatusForbidden)
	default:
		// os.Root refuses paths (and symlinks) that leave the directory.
		if strings.Contains(err.Error(), "escapes") || strings.Contains(err.Error(), "outside") {
			http.NotFound(w, r)
			return
		}
		h.log.Warn("serve", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request, d *os.File, dir string) {
	entries, err := d.ReadDir(-1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	var b strings.Builder
	t := html.EscapeString(dir)
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of %s</title></head><body>\n<h1>Index of %s</h1>\n<table>\n", t, t)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := e.Name()
		size := ""
		if e.IsDir() {
			name += "/"
		} else if fi, err := e.Info(); err == nil {
			size = strconv.FormatInt(fi.Size(), 10)
		}
		u := (&urlPath{name}).String()
		fmt.Fprintf(&b, "<tr><td><a href=\"%s\">%s</a></td><td>%s</td></tr>\n", html.EscapeString(u), html.EscapeString(name), size)
	}
	b.WriteString("</table>\n</body></html>\n")
	_, _ = w.Write([]byte(b.String()))
}

type urlPath struct{ p string }

func (u *urlPath) String() string {
	var b strings.Builder
	for i := 0; i < len(u.p); i++ {
		c := u.p[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"#%<>?\\^`{|}", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return "./" + b.String()
}
