package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Limits bound what one request may carry; update_engine's requests are
// about 1 KiB with one app and one event.
const (
	MaxRequestBytes = 64 << 10
	MaxApps         = 32
	MaxEventsPerApp = 16
	MaxAttrLen      = 256
	maxDepth        = 8
)

// Errors returned by Decode; callers map them to HTTP statuses.
var (
	ErrTooLarge  = errors.New("omaha: request body exceeds 64 KiB")
	ErrMalformed = errors.New("omaha: malformed request")
)

// Decode reads one Omaha request from r, refusing bodies over
// MaxRequestBytes, documents nested too deep, too many apps or events,
// over-long attributes and protocols other than 3.0.
func Decode(r io.Reader) (*Request, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("omaha: reading request: %w", err)
	}
	if len(body) > MaxRequestBytes {
		return nil, ErrTooLarge
	}
	return DecodeBytes(body)
}

// DecodeBytes is Decode on a body already in memory.
func DecodeBytes(body []byte) (*Request, error) {
	if len(body) > MaxRequestBytes {
		return nil, ErrTooLarge
	}
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	if err := checkShape(body); err != nil {
		return nil, err
	}
	req, ok := decodePlainRequest(body)
	if !ok {
		var err error
		if req, err = decodeXMLRequest(body); err != nil {
			return nil, err
		}
	}
	if req.Protocol != "3.0" {
		return nil, fmt.Errorf("%w: protocol %q, want 3.0", ErrMalformed, req.Protocol)
	}
	if len(req.Apps) == 0 {
		return nil, fmt.Errorf("%w: no <app>", ErrMalformed)
	}
	for _, a := range req.Apps {
		if a.ID == "" {
			return nil, fmt.Errorf("%w: <app> without appid", ErrMalformed)
		}
	}
	if err := checkFields(req); err != nil {
		return nil, err
	}
	return req, nil
}

// decodeXMLRequest decodes with encoding/xml (strict), for documents
// outside the plain subset.
func decodeXMLRequest(body []byte) (*Request, error) {
	var req Request
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = nil
	if err := d.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Nothing but whitespace may follow the one <request>.
	if tok, err := d.Token(); err != io.EOF {
		if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) != 0 {
			return nil, fmt.Errorf("%w: data after </request>", ErrMalformed)
		}
		if _, err := d.Token(); err != io.EOF {
			return nil, fmt.Errorf("%w: data after </request>", ErrMalformed)
		}
	}
	return &req, nil
}

// checkShape enforces count limits with byte scans before the decoder
// allocates anything (a token pass costs as much as the decode itself);
// the counts are upper bounds, so they never let too much through.
func checkShape(body []byte) error {
	if bytes.Contains(body, []byte("<!")) {
		return fmt.Errorf("%w: DTDs and CDATA are not accepted", ErrMalformed)
	}
	if n := bytes.Count(body, []byte("<app")); n > MaxApps {
		return fmt.Errorf("%w: more than %d apps", ErrMalformed, MaxApps)
	}
	if n := bytes.Count(body, []byte("<")); n > 64*MaxApps {
		return fmt.Errorf("%w: too many elements", ErrMalformed)
	}
	return nil
}

// checkFields bounds what the decoder accepted: events per app and the
// length of every attribute the server keeps.
func checkFields(req *Request) error {
	long := func(vals ...string) bool {
		for _, v := range vals {
			if len(v) > MaxAttrLen {
				return true
			}
		}
		return false
	}
	for _, a := range req.Apps {
		if len(a.Events) > MaxEventsPerApp {
			return fmt.Errorf("%w: more than %d events in one app", ErrMalformed, MaxEventsPerApp)
		}
		if long(a.ID, a.Version, a.Track, a.Board, a.MachineID, a.MachineAlias, a.OEM, a.OEMVersion, a.AlephVersion, a.BootID) {
			return fmt.Errorf("%w: an <app> attribute is longer than %d bytes", ErrMalformed, MaxAttrLen)
		}
		for _, e := range a.Events {
			if long(e.ErrorCode, e.PreviousVersion, e.NextVersion) {
				return fmt.Errorf("%w: an <event> attribute is longer than %d bytes", ErrMalformed, MaxAttrLen)
			}
		}
	}
	return nil
}

// Encode writes a response with the XML declaration, as Nebraska does.
func Encode(w io.Writer, resp *Response) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	var x xmlWriter
	x.response(resp)
	_, err := w.Write(x.Bytes())
	return err
}

// NewResponse starts a response in Strata's name.
func NewResponse() *Response {
	return &Response{Protocol: "3.0", Server: "strata", DayStart: DayStart{ElapsedSeconds: "0"}}
}
