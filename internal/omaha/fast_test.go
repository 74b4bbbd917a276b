package omaha

import (
	"bytes"
	"encoding/xml"
	"reflect"
	"testing"
)

var plainSeeds = []string{
	updateEngineCheck,
	`<request protocol="3.0"><app appid="x"><event eventtype="3" eventresult="0" errorcode="268435477"/></app></request>`,
	`<request protocol="3.0"><os arch="x64"/><app appid="{A}" board="arm64-usr"><ping/></app></request>`,
	`<?xml version='1.0'?>
<request protocol = '3.0' ismachine="1">
  <app appid="x" version="1.2.3" >
    <updatecheck targetversionprefix=""></updatecheck>
    <event eventtype=" 3 " eventresult="2" previousversion=""/>
    <event eventtype="" eventresult="1" nextversion="2"></event >
  </app>
</request>
`,
	`<request protocol="3.0"><app appid="x"><event eventtype="99999999999999999999" eventresult="1"/></app></request>`,
	`<request protocol="3.0"><app appid="a&amp;b"/></request>`,
	`<request protocol="3.0"><app appid="x"><ping/><ping/></app></request>`,
	`<request protocol="3.0"><hw/><app appid="x"/></request>`,
	`<request protocol="3.0" protocol="2.0"><app appid="x"/></request>`,
	`<o:request xmlns:o="urn:x" protocol="3.0"><app appid="x"/></o:request>`,
	`<?xml version="1.0" encoding="UTF-8"?><response protocol="3.0" server="strata"><daystart elapsed_seconds="0"></daystart><app appid="x" status="ok"><ping status="ok"></ping><updatecheck status="ok"><urls><url codebase="http://h/p/"></url></urls><manifest version="2.0.0"><packages><package name="a.raw" hash="aGFzaA==" size="10" required="true"></package><package name="b.raw" hash="" hash_sha256="ab" size=" 7 " required="False"></package></packages><actions><action event="postinstall" sha256="c2hh" DisablePayloadBackoff="true"></action></actions></manifest></updatecheck><event status="ok"></event></app></response>`,
	`<response protocol="3.0"><app appid="x" status="ok"><updatecheck status="noupdate" PollInterval="60"/></app></response>`,
	`<response><app><updatecheck><urls><url/><x/></urls></updatecheck></app></response>`,
	`<response><daystart/><daystart/></response>`,
	`<response><app><updatecheck><manifest><packages><package size="x"/></packages></manifest></updatecheck></app></response>`,
}

// FuzzPlainRequest holds the plain scanner to encoding/xml: whatever it
// accepts, encoding/xml must decode to the same request.
func FuzzPlainRequest(f *testing.F) {
	for _, s := range plainSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodePlainRequest(body)
		if !ok {
			return
		}
		slow, err := decodeXMLRequest(body)
		if err != nil {
			t.Fatalf("plain scanner accepted what encoding/xml refuses (%v): %q", err, body)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("decoders disagree on %q:\nplain %+v\nxml   %+v", body, fast, slow)
		}
	})
}

// FuzzPlainResponse does the same for the client's side.
func FuzzPlainResponse(f *testing.F) {
	for _, s := range plainSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodePlainResponse(body)
		if !ok {
			return
		}
		var slow Response
		if err := xml.Unmarshal(body, &slow); err != nil {
			t.Fatalf("plain scanner accepted what encoding/xml refuses (%v): %q", err, body)
		}
		if !reflect.DeepEqual(fast, &slow) {
			t.Fatalf("decoders disagree on %q:\nplain %+v\nxml   %+v", body, fast, &slow)
		}
	})
}

// FuzzPlainEncode holds the writer to encoding/xml's bytes, and checks
// that what it writes decodes back to what was written.
func FuzzPlainEncode(f *testing.F) {
	f.Add("ok", "2.0.0", "a.raw", "aGFzaA==", int64(10), true, "postinstall", "60", "{x}", 3, 2, "")
	f.Add("", "", "", "", int64(0), false, "", "", "", 0, 0, "1.0")
	f.Add("a<b>&\"'\t\n\r", "\x00\x7f\u00e9\ufffe", "x", "y", int64(-1), false, "e", "", "app\"id", -5, 99, "p&v")
	f.Fuzz(func(t *testing.T, status, ver, name, hash string, size int64, required bool, event, poll, appid string, et, er int, prev string) {
		resp := NewResponse()
		resp.Apps = []*ResponseApp{{ID: appid, Status: status, Ping: &StatusOnly{Status: status},
			UpdateCheck: &ResponseUpdateCheck{Status: status, PollInterval: poll, URLs: []URL{{Codebase: name}},
				Manifests: []*Manifest{{Version: ver, Packages: []Package{{Name: name, Hash: hash, HashSHA256: hash, Size: size, Required: required}, {Name: ver}},
					Actions: []Action{{Event: event, SHA256: hash, DisablePayloadBackoff: poll}}}}},
			Events: []*StatusOnly{{Status: event}}}, {ID: ver, UpdateCheck: &ResponseUpdateCheck{Manifests: []*Manifest{{Version: ver}}}}}
		var want bytes.Buffer
		want.WriteString(xml.Header)
		if err := xml.NewEncoder(&want).Encode(resp); err != nil {
			t.Skip(err)
		}
		var got bytes.Buffer
		if err := Encode(&got, resp); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("response bytes differ:\nplain %s\nxml   %s", got.String(), want.String())
		}

		req := UpdateEngineRequest(appid, ver, status, name, prev)
		req.Apps[0].Events = append(req.Apps[0].Events, &Event{Type: et, Result: er, ErrorCode: hash, NextVersion: event})
		req.Apps = append(req.Apps, &App{ID: poll, UpdateCheck: &UpdateCheck{TargetVersionPrefix: ver}})
		var wantReq bytes.Buffer
		wantReq.WriteString(xml.Header)
		if err := xml.NewEncoder(&wantReq).Encode(req); err != nil {
			t.Skip(err)
		}
		gotReq, err := encodeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if string(gotReq) != wantReq.String() {
			t.Fatalf("request bytes differ:\nplain %s\nxml   %s", gotReq, wantReq.String())
		}
	})
}

// TestPlainPathTaken makes sure the documents update_engine and Strata
// exchange take the plain path (the fallback would hide a regression in
// speed, not in results).
func TestPlainPathTaken(t *testing.T) {
	if _, ok := decodePlainRequest([]byte(updateEngineCheck)); !ok {
		t.Fatal("update_engine's check fell back to encoding/xml")
	}
	body, err := encodeRequest(UpdateEngineRequest("e96281a6-d1af-4bde-9a0a-97b76e56dc57", "1.0.0", "stable", "m1", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodePlainRequest(body); !ok {
		t.Fatalf("the simulator's request fell back: %s", body)
	}
	var resp bytes.Buffer
	if err := Encode(&resp, &Response{Protocol: "3.0", Server: "strata", Apps: []*ResponseApp{{ID: "x", Status: "ok",
		UpdateCheck: &ResponseUpdateCheck{Status: "ok", URLs: []URL{{Codebase: "http://127.0.0.1/"}},
			Manifests: []*Manifest{{Version: "2", Packages: []Package{{Name: "a", Hash: "aGFzaA==", Size: 1, Required: true}},
				Actions: []Action{{Event: "postinstall", SHA256: "c2hh"}}}}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := decodePlainResponse(resp.Bytes()); !ok {
		t.Fatalf("the server's response fell back: %s", resp.Bytes())
	}
}
