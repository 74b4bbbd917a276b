package omaha

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const updateEngineCheck = `<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
    <os version="Chateau" platform="CoreOS" sp="4081.2.0_x86_64"></os>
    <app appid="{E96281A6-d1af-4bde-9a0a-97b76e56dc57}" version="4081.2.0" track="stable" bootid="{965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84}" oem="azure" oemversion="2.9.1.1-r3" alephversion="3510.2.0" machineid="abce671d61774703ac7be60715220bfe" machinealias="" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false" >
        <ping active="1"></ping>
        <updatecheck></updatecheck>
        <event eventtype="3" eventresult="2" previousversion=""></event>
    </app>
</request>`

func TestDecodeUpdateEngineCheck(t *testing.T) {
	req, err := DecodeBytes([]byte(updateEngineCheck))
	if err != nil {
		t.Fatal(err)
	}
	a := req.Apps[0]
	if NormalizeAppID(a.ID) != "e96281a6-d1af-4bde-9a0a-97b76e56dc57" {
		t.Errorf("app id %q", NormalizeAppID(a.ID))
	}
	if a.MachineID != "abce671d61774703ac7be60715220bfe" || a.Track != "stable" || a.Version != "4081.2.0" {
		t.Errorf("app %+v", a)
	}
	if a.Ping == nil || a.UpdateCheck == nil || len(a.Events) != 1 {
		t.Fatalf("children: %+v", a)
	}
	ev := a.Events[0]
	if ev.Type != 3 || ev.Result != 2 || !ev.HasPrevious || ev.PreviousVersion != "" {
		t.Errorf("event %+v", ev)
	}
	if Arch(a, req.OS) != "amd64" {
		t.Errorf("arch %s", Arch(a, req.OS))
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string]string{
		"protocol":   `<request protocol="2.0"><app appid="x"/></request>`,
		"no app":     `<request protocol="3.0"></request>`,
		"no appid":   `<request protocol="3.0"><app/></request>`,
		"syntax":     `<request protocol="3.0"><app appid="x" foo></request>`,
		"two roots":  `<request protocol="3.0"><app appid="x"/></request><request protocol="3.0"/>`,
		"dtd":        `<!DOCTYPE x [<!ENTITY a "b">]><request protocol="3.0"><app appid="x"/></request>`,
		"deep":       `<request protocol="3.0"><app appid="x">` + strings.Repeat("<a>", 3000) + strings.Repeat("</a>", 3000) + `</app></request>`,
		"events":     `<request protocol="3.0"><app appid="x">` + strings.Repeat(`<event eventtype="3" eventresult="1"/>`, 17) + `</app></request>`,
		"long attr":  `<request protocol="3.0"><app appid="` + strings.Repeat("x", 300) + `"/></request>`,
		"wrong root": `<response protocol="3.0"><app appid="x"/></response>`,
	}
	for name, body := range cases {
		if _, err := DecodeBytes([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	big := `<request protocol="3.0"><app appid="x"/>` + strings.Repeat(" ", MaxRequestBytes) + `</request>`
	if _, err := Decode(strings.NewReader(big)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("big body: %v", err)
	}
}

func TestErrorCode(t *testing.T) {
	cases := []struct {
		in          string
		code, flags uint32
		ok          bool
	}{
		{"", 0, 0, true},
		{"44", 44, 0, true},
		{"268435477", 21, FlagTestOmahaURL, true},
		{"-2147483604", 44, FlagDevMode, true},
		{"x", 0, 0, false},
		{"99999999999999", 0, 0, false},
	}
	for _, c := range cases {
		code, flags, ok := ErrorCode(c.in)
		if code != c.code || flags != c.flags || ok != c.ok {
			t.Errorf("ErrorCode(%q) = %d,%#x,%v want %d,%#x,%v", c.in, code, flags, ok, c.code, c.flags, c.ok)
		}
	}
}

func TestEventRoundTrip(t *testing.T) {
	req := UpdateEngineRequest("abc", "1.0.0", "stable", "m1", "")
	var buf bytes.Buffer
	if err := Encode(&buf, &Response{}); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	c := Client{}
	_ = c
	// Encode the request through the same path the client uses.
	out, err := encodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `previousversion=""`) {
		t.Fatalf("previousversion dropped: %s", out)
	}
	back, err := DecodeBytes(out)
	if err != nil {
		t.Fatal(err)
	}
	if ev := back.Apps[0].Events[0]; !ev.HasPrevious || ev.Type != 3 || ev.Result != 2 {
		t.Fatalf("round trip: %+v", ev)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(updateEngineCheck))
	f.Add([]byte(`<request protocol="3.0"><app appid="x"><event eventtype="3" eventresult="0" errorcode="268435477"/></app></request>`))
	f.Add([]byte(`<request protocol="3.0"><os arch="x64"/><app appid="{A}" board="arm64-usr"><ping/></app></request>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeBytes(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if len(req.Apps) == 0 || len(req.Apps) > MaxApps {
			t.Fatalf("accepted %d apps", len(req.Apps))
		}
		for _, a := range req.Apps {
			if len(a.Events) > MaxEventsPerApp {
				t.Fatalf("accepted %d events", len(a.Events))
			}
			_ = NormalizeAppID(a.ID)
			_ = Arch(a, req.OS)
			for _, e := range a.Events {
				ErrorCode(e.ErrorCode)
			}
		}
		// Whatever we accepted must re-encode and decode again.
		out, err := encodeRequest(req)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodeBytes(out); err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("re-decode of %q: %v", out, err)
		}
	})
}
