package omaha

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
)

// encoding/xml is a fifth of a fleet server's CPU per update check (and
// more of the simulator's): reflection, a token per attribute, a copy
// per value. Omaha documents are small, flat and plain, so they go
// through a scanner for exactly that plain subset first — ASCII names
// and values without entities, only the elements of the protocol, each
// singular element once — and anything else (entities, namespaces,
// unknown elements, odd declarations) falls back to encoding/xml, whose
// result then stands. The fuzz tests hold the two to the same answer on
// everything the scanner accepts, and to the same bytes when encoding.

// node is one element of a plain document.
type node struct {
	name  string
	attrs []xmlAttr
	kids  []*node
}

type xmlAttr struct{ name, value string }

const maxPlainDepth = 6

// declarations are the XML declarations the plain scanner accepts; the
// others (an encoding to convert, another version) go to encoding/xml.
var declarations = []string{
	`<?xml version="1.0" encoding="UTF-8"?>`,
	`<?xml version="1.0" encoding="utf-8"?>`,
	`<?xml version="1.0"?>`,
	`<?xml version='1.0' encoding='UTF-8'?>`,
	`<?xml version='1.0' encoding='utf-8'?>`,
	`<?xml version='1.0'?>`,
}

// scanPlain parses a plain document into its root element; false means
// "not plain", never "invalid".
func scanPlain(b []byte) (*node, bool) {
	for _, d := range declarations {
		if bytes.HasPrefix(b, []byte(d)) {
			b = b[len(d):]
			break
		}
	}
	p := plainScanner{b: b}
	p.space()
	root, ok := p.element(0)
	if !ok {
		return nil, false
	}
	p.space()
	return root, p.i == len(p.b)
}

type plainScanner struct {
	b []byte
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *plainScanner) space() {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
}

func (p *plainScanner) name() (string, bool) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (p.i == start || !(c >= '0' && c <= '9' || c == '-' || c == '.')) {
			break
		}
		p.i++
	}
	return string(p.b[start:p.i]), p.i > start
}

// element parses <name attrs…/> or <name attrs…>children</name>, with
// only whitespace between children.
func (p *plainScanner) element(depth int) (*node, bool) {
	if depth > maxPlainDepth || p.i >= len(p.b) || p.b[p.i] != '<' {
		return nil, false
	}
	p.i++
	name, ok := p.name()
	if !ok {
		return nil, false
	}
	n := &node{name: name}
	for {
		sp := p.i
		p.space()
		if p.i >= len(p.b) {
			return nil, false
		}
		switch p.b[p.i] {
		case '/':
			if p.i+1 >= len(p.b) || p.b[p.i+1] != '>' {
				return nil, false
			}
			p.i += 2
			return n, true
		case '>':
			p.i++
			return p.children(n, depth)
		}
		if p.i == sp { // attributes must be separated by space
			return nil, false
		}
		an, ok := p.name()
		if !ok || strings.HasPrefix(an, "xmlns") {
			return nil, false
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '=' {
			return nil, false
		}
		p.i++
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' && p.b[p.i] != '\'' {
			return nil, false
		}
		q := p.b[p.i]
		p.i++
		start := p.i
		for p.i < len(p.b) && p.b[p.i] != q {
			c := p.b[p.i]
			if c < 0x20 || c >= 0x80 || c == '<' || c == '&' {
				return nil, false
			}
			p.i++
		}
		if p.i >= len(p.b) {
			return nil, false
		}
		for _, a := range n.attrs {
			if a.name == an {
				return nil, false
			}
		}
		n.attrs = append(n.attrs, xmlAttr{an, string(p.b[start:p.i])})
		p.i++
	}
}

func (p *plainScanner) children(n *node, depth int) (*node, bool) {
	for {
		p.space()
		if p.i+1 >= len(p.b) || p.b[p.i] != '<' {
			return nil, false
		}
		if p.b[p.i+1] == '/' {
			p.i += 2
			end, ok := p.name()
			if !ok || end != n.name {
				return nil, false
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != '>' {
				return nil, false
			}
			p.i++
			return n, true
		}
		kid, ok := p.element(depth + 1)
		if !ok {
			return nil, false
		}
		n.kids = append(n.kids, kid)
	}
}

// plainInt and plainBool convert the way encoding/xml does.
func plainInt(s string, bits int) (int64, bool) {
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, bits)
	return v, err == nil
}

func plainBool(s string) (bool, bool) {
	if s == "" {
		return false, true
	}
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	return v, err == nil
}

// leaf reports whether n has no child elements.
func leaf(n *node) bool { return len(n.kids) == 0 }

func decodePlainRequest(body []byte) (*Request, bool) {
	root, ok := scanPlain(body)
	if !ok || root.name != "request" {
		return nil, false
	}
	req := &Request{XMLName: xml.Name{Local: "request"}}
	for _, a := range root.attrs {
		switch a.name {
		case "protocol":
			req.Protocol = a.value
		case "version":
			req.Version = a.value
		case "updaterversion":
			req.UpdaterVersion = a.value
		case "installsource":
			req.InstallSource = a.value
		case "ismachine":
			req.IsMachine = a.value
		case "requestid":
			req.RequestID = a.value
		case "sessionid":
			req.SessionID = a.value
		}
	}
	for _, k := range root.kids {
		switch k.name {
		case "os":
			if req.OS != nil || !leaf(k) {
				return nil, false
			}
			req.OS = &OS{}
			for _, a := range k.attrs {
				switch a.name {
				case "platform":
					req.OS.Platform = a.value
				case "version":
					req.OS.Version = a.value
				case "sp":
					req.OS.SP = a.value
				case "arch":
					req.OS.Arch = a.value
				}
			}
		case "app":
			app, ok := plainApp(k)
			if !ok {
				return nil, false
			}
			req.Apps = append(req.Apps, app)
		default:
			return nil, false
		}
	}
	return req, true
}

func plainApp(n *node) (*App, bool) {
	app := &App{}
	for _, a := range n.attrs {
		switch a.name {
		case "appid":
			app.ID = a.value
		case "version":
			app.Version = a.value
		case "track":
			app.Track = a.value
		case "board":
			app.Board = a.value
		case "bootid":
			app.BootID = a.value
		case "machineid":
			app.MachineID = a.value
		case "machinealias":
			app.MachineAlias = a.value
		case "oem":
			app.OEM = a.value
		case "oemversion":
			app.OEMVersion = a.value
		case "alephversion":
			app.AlephVersion = a.value
		case "lang":
			app.Lang = a.value
		case "multi_manifest_ok":
			app.MultiManifestOK = a.value
		}
	}
	for _, k := range n.kids {
		if !leaf(k) {
			return nil, false
		}
		switch k.name {
		case "ping":
			if app.Ping != nil {
				return nil, false
			}
			app.Ping = &Ping{}
			for _, a := range k.attrs {
				if a.name == "active" {
					app.Ping.Active = a.value
				}
			}
		case "updatecheck":
			if app.UpdateCheck != nil {
				return nil, false
			}
			app.UpdateCheck = &UpdateCheck{}
			for _, a := range k.attrs {
				if a.name == "targetversionprefix" {
					app.UpdateCheck.TargetVersionPrefix = a.value
				}
			}
		case "event":
			ev := &Event{}
			for _, a := range k.attrs {
				var ok = true
				var v int64
				switch a.name {
				case "eventtype":
					v, ok = plainInt(a.value, strconv.IntSize)
					ev.Type = int(v)
				case "eventresult":
					v, ok = plainInt(a.value, strconv.IntSize)
					ev.Result = int(v)
				case "errorcode":
					ev.ErrorCode = a.value
				case "previousversion":
					ev.PreviousVersion, ev.HasPrevious = a.value, true
				case "nextversion":
					ev.NextVersion = a.value
				}
				if !ok {
					return nil, false
				}
			}
			app.Events = append(app.Events, ev)
		default:
			return nil, false
		}
	}
	return app, true
}

func decodePlainResponse(body []byte) (*Response, bool) {
	root, ok := scanPlain(body)
	if !ok || root.name != "response" {
		return nil, false
	}
	resp := &Response{XMLName: xml.Name{Local: "response"}}
	for _, a := range root.attrs {
		switch a.name {
		case "protocol":
			resp.Protocol = a.value
		case "server":
			resp.Server = a.value
		}
	}
	daystart := false
	for _, k := range root.kids {
		switch k.name {
		case "daystart":
			if daystart || !leaf(k) {
				return nil, false
			}
			daystart = true
			for _, a := range k.attrs {
				if a.name == "elapsed_seconds" {
					resp.DayStart.ElapsedSeconds = a.value
				}
			}
		case "app":
			app, ok := plainResponseApp(k)
			if !ok {
				return nil, false
			}
			resp.Apps = append(resp.Apps, app)
		default:
			return nil, false
		}
	}
	return resp, true
}

func statusOf(n *node) *StatusOnly {
	s := &StatusOnly{}
	for _, a := range n.attrs {
		if a.name == "status" {
			s.Status = a.value
		}
	}
	return s
}

func plainResponseApp(n *node) (*ResponseApp, bool) {
	app := &ResponseApp{}
	for _, a := range n.attrs {
		switch a.name {
		case "appid":
			app.ID = a.value
		case "status":
			app.Status = a.value
		}
	}
	for _, k := range n.kids {
		switch k.name {
		case "ping":
			if app.Ping != nil || !leaf(k) {
				return nil, false
			}
			app.Ping = statusOf(k)
		case "event":
			if !leaf(k) {
				return nil, false
			}
			app.Events = append(app.Events, statusOf(k))
		case "updatecheck":
			if app.UpdateCheck != nil {
				return nil, false
			}
			uc, ok := plainUpdateCheck(k)
			if !ok {
				return nil, false
			}
			app.UpdateCheck = uc
		default:
			return nil, false
		}
	}
	return app, true
}

func plainUpdateCheck(n *node) (*ResponseUpdateCheck, bool) {
	uc := &ResponseUpdateCheck{}
	for _, a := range n.attrs {
		switch a.name {
		case "status":
			uc.Status = a.value
		case "PollInterval":
			uc.PollInterval = a.value
		}
	}
	for _, k := range n.kids {
		switch k.name {
		case "urls":
			for _, u := range k.kids {
				if u.name != "url" || !leaf(u) {
					return nil, false
				}
				var url URL
				for _, a := range u.attrs {
					if a.name == "codebase" {
						url.Codebase = a.value
					}
				}
				uc.URLs = append(uc.URLs, url)
			}
		case "manifest":
			m, ok := plainManifest(k)
			if !ok {
				return nil, false
			}
			uc.Manifests = append(uc.Manifests, m)
		default:
			return nil, false
		}
	}
	return uc, true
}

func plainManifest(n *node) (*Manifest, bool) {
	m := &Manifest{}
	for _, a := range n.attrs {
		if a.name == "version" {
			m.Version = a.value
		}
	}
	for _, k := range n.kids {
		switch k.name {
		case "packages":
			for _, pn := range k.kids {
				if pn.name != "package" || !leaf(pn) {
					return nil, false
				}
				var p Package
				for _, a := range pn.attrs {
					ok := true
					switch a.name {
					case "name":
						p.Name = a.value
					case "hash":
						p.Hash = a.value
					case "hash_sha256":
						p.HashSHA256 = a.value
					case "size":
						p.Size, ok = plainInt(a.value, 64)
					case "required":
						p.Required, ok = plainBool(a.value)
					}
					if !ok {
						return nil, false
					}
				}
				m.Packages = append(m.Packages, p)
			}
		case "actions":
			for _, an := range k.kids {
				if an.name != "action" || !leaf(an) {
					return nil, false
				}
				var act Action
				for _, a := range an.attrs {
					switch a.name {
					case "event":
						act.Event = a.value
					case "sha256":
						act.SHA256 = a.value
					case "DisablePayloadBackoff":
						act.DisablePayloadBackoff = a.value
					}
				}
				m.Actions = append(m.Actions, act)
			}
		default:
			return nil, false
		}
	}
	return m, true
}

// xmlWriter appends elements the way encoding/xml's Encoder writes them
// (no self-closing tags, attributes escaped with xml.EscapeText).
type xmlWriter struct{ bytes.Buffer }

func (w *xmlWriter) open(name string) { w.WriteByte('<'); w.WriteString(name) }

func (w *xmlWriter) attr(name, value string) {
	w.WriteByte(' ')
	w.WriteString(name)
	w.WriteString(`="`)
	if plainValue(value) {
		w.WriteString(value)
	} else {
		_ = xml.EscapeText(w, []byte(value))
	}
	w.WriteByte('"')
}

func (w *xmlWriter) attrOmit(name, value string) {
	if value != "" {
		w.attr(name, value)
	}
}

func (w *xmlWriter) endOpen() { w.WriteByte('>') }

func (w *xmlWriter) close(name string) { w.WriteString("</"); w.WriteString(name); w.WriteByte('>') }

// empty closes an element that has only attributes.
func (w *xmlWriter) empty(name string) { w.WriteString("></"); w.WriteString(name); w.WriteByte('>') }

// plainValue reports whether s needs no escaping.
func plainValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\'' || c == '&' || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

func (w *xmlWriter) response(r *Response) {
	w.open("response")
	w.attr("protocol", r.Protocol)
	w.attr("server", r.Server)
	w.endOpen()
	w.open("daystart")
	w.attr("elapsed_seconds", r.DayStart.ElapsedSeconds)
	w.empty("daystart")
	for _, a := range r.Apps {
		if a == nil {
			continue
		}
		w.open("app")
		w.attr("appid", a.ID)
		w.attr("status", a.Status)
		w.endOpen()
		if a.Ping != nil {
			w.open("ping")
			w.attr("status", a.Ping.Status)
			w.empty("ping")
		}
		if uc := a.UpdateCheck; uc != nil {
			w.updateCheck(uc)
		}
		for _, e := range a.Events {
			if e == nil {
				continue
			}
			w.open("event")
			w.attr("status", e.Status)
			w.empty("event")
		}
		w.close("app")
	}
	w.close("response")
}

func (w *xmlWriter) updateCheck(uc *ResponseUpdateCheck) {
	w.open("updatecheck")
	w.attr("status", uc.Status)
	w.attrOmit("PollInterval", uc.PollInterval)
	w.endOpen()
	// encoding/xml writes a>b parents even for empty slices, and
	// Nebraska's noupdate carries the empty <urls></urls>.
	w.WriteString("<urls>")
	for _, u := range uc.URLs {
		w.open("url")
		w.attr("codebase", u.Codebase)
		w.empty("url")
	}
	w.WriteString("</urls>")
	for _, m := range uc.Manifests {
		if m == nil {
			continue
		}
		w.open("manifest")
		w.attr("version", m.Version)
		w.endOpen()
		w.WriteString("<packages>")
		for _, p := range m.Packages {
			w.open("package")
			w.attr("name", p.Name)
			w.attr("hash", p.Hash)
			w.attrOmit("hash_sha256", p.HashSHA256)
			w.attr("size", strconv.FormatInt(p.Size, 10))
			w.attr("required", strconv.FormatBool(p.Required))
			w.empty("package")
		}
		w.WriteString("</packages><actions>")
		for _, a := range m.Actions {
			w.open("action")
			w.attr("event", a.Event)
			w.attrOmit("sha256", a.SHA256)
			w.attrOmit("DisablePayloadBackoff", a.DisablePayloadBackoff)
			w.empty("action")
		}
		w.WriteString("</actions>")
		w.close("manifest")
	}
	w.close("updatecheck")
}

func (w *xmlWriter) request(r *Request) {
	w.open("request")
	w.attr("protocol", r.Protocol)
	w.attrOmit("version", r.Version)
	w.attrOmit("updaterversion", r.UpdaterVersion)
	w.attrOmit("installsource", r.InstallSource)
	w.attrOmit("ismachine", r.IsMachine)
	w.attrOmit("requestid", r.RequestID)
	w.attrOmit("sessionid", r.SessionID)
	w.endOpen()
	if o := r.OS; o != nil {
		w.open("os")
		w.attrOmit("platform", o.Platform)
		w.attrOmit("version", o.Version)
		w.attrOmit("sp", o.SP)
		w.attrOmit("arch", o.Arch)
		w.empty("os")
	}
	for _, a := range r.Apps {
		if a == nil {
			continue
		}
		w.open("app")
		w.attr("appid", a.ID)
		w.attrOmit("version", a.Version)
		w.attrOmit("track", a.Track)
		w.attrOmit("board", a.Board)
		w.attrOmit("bootid", a.BootID)
		w.attrOmit("machineid", a.MachineID)
		w.attrOmit("machinealias", a.MachineAlias)
		w.attrOmit("oem", a.OEM)
		w.attrOmit("oemversion", a.OEMVersion)
		w.attrOmit("alephversion", a.AlephVersion)
		w.attrOmit("lang", a.Lang)
		w.attrOmit("multi_manifest_ok", a.MultiManifestOK)
		w.endOpen()
		if a.Ping != nil {
			w.open("ping")
			w.attrOmit("active", a.Ping.Active)
			w.empty("ping")
		}
		if a.UpdateCheck != nil {
			w.open("updatecheck")
			w.attrOmit("targetversionprefix", a.UpdateCheck.TargetVersionPrefix)
			w.empty("updatecheck")
		}
		for _, e := range a.Events {
			if e == nil {
				continue
			}
			w.open("event")
			w.attr("eventtype", strconv.Itoa(e.Type))
			w.attr("eventresult", strconv.Itoa(e.Result))
			w.attrOmit("errorcode", e.ErrorCode)
			if e.HasPrevious || e.PreviousVersion != "" {
				w.attr("previousversion", e.PreviousVersion)
			}
			w.attrOmit("nextversion", e.NextVersion)
			w.empty("event")
		}
		w.close("app")
	}
	w.close("request")
}
