package omaha

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
)

// MaxResponseBytes bounds what the client reads from a server.
const MaxResponseBytes = 1 << 20

// Client posts requests to one Omaha endpoint the way update_engine does.
type Client struct {
	URL  string
	HTTP *http.Client
}

// Do sends req and decodes the answer. A non-200 status is an error that
// names the status, as update_engine's 2000+N codes do.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	body, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "text/xml")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(hr)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err = io.ReadAll(io.LimitReader(res.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("omaha: reading response from %s: %w", c.URL, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, &HTTPError{Status: res.StatusCode}
	}
	if len(body) > MaxResponseBytes {
		return nil, fmt.Errorf("omaha: response from %s exceeds 1 MiB", c.URL)
	}
	if resp, ok := decodePlainResponse(body); ok {
		return resp, nil
	}
	var resp Response
	if err := xml.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("omaha: response from %s is not Omaha XML: %w", c.URL, err)
	}
	return &resp, nil
}

// HTTPError is a non-200 answer; update_engine reports it as 2000+Status.
type HTTPError struct{ Status int }

func (e *HTTPError) Error() string { return fmt.Sprintf("omaha: server answered HTTP %d", e.Status) }

// UpdateEngineRequest builds the request update_engine sends for a
// periodic check: ping, updatecheck and the 3/2 event with
// previousversion (old version after an update, "" otherwise).
func UpdateEngineRequest(appID, version, track, machineID, previous string) *Request {
	return &Request{
		Protocol: "3.0", Version: "update_engine-0.4.10", UpdaterVersion: "update_engine-0.4.10",
		InstallSource: "scheduler", IsMachine: "1",
		OS: &OS{Version: "Chateau", Platform: "CoreOS", SP: version + "_x86_64"},
		Apps: []*App{{
			ID: "{" + appID + "}", Version: version, Track: track, MachineID: machineID,
			Board: "amd64-usr", Lang: "en-US",
			Ping:        &Ping{Active: "1"},
			UpdateCheck: &UpdateCheck{},
			Events:      []*Event{{Type: EventUpdateComplete, Result: ResultSuccessReboot, PreviousVersion: previous, HasPrevious: true}},
		}},
	}
}

// EventRequest builds an event-only request (13/1, 14/1, 3/1, 3/0).
func EventRequest(appID, version, track, machineID string, ev Event) *Request {
	r := UpdateEngineRequest(appID, version, track, machineID, "")
	a := r.Apps[0]
	a.Ping, a.UpdateCheck = nil, nil
	a.Events = []*Event{&ev}
	return r
}

// MarshalXML writes previousversion="" when the event had one, since
// omitempty would drop the empty value the 3/2 convention relies on.
func (e *Event) MarshalXML(enc *xml.Encoder, start xml.StartElement) error {
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "eventtype"}, Value: fmt.Sprint(e.Type)},
		xml.Attr{Name: xml.Name{Local: "eventresult"}, Value: fmt.Sprint(e.Result)})
	if e.ErrorCode != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "errorcode"}, Value: e.ErrorCode})
	}
	if e.HasPrevious || e.PreviousVersion != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "previousversion"}, Value: e.PreviousVersion})
	}
	if e.NextVersion != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "nextversion"}, Value: e.NextVersion})
	}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	return enc.EncodeToken(start.End())
}

func encodeRequest(req *Request) ([]byte, error) {
	var x xmlWriter
	x.WriteString(xml.Header)
	x.request(req)
	return x.Bytes(), nil
}
