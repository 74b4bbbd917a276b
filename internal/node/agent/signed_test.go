package agent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/testutil/keytest"
)

// TestAgentRefusesUntrustedSignature: a node that trusts its vendor's certificate (etc/verity.d) is
// offered a payload whose root hash someone else signed. The download checks out; the install refuses
// it before touching slot B and reports update_engine's 3/0 with
// kActionCodeDownloadPayloadPubKeyVerificationError (18).
func TestAgentRefusesUntrustedSignature(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	vendor, mallory := keytest.New(t, "OS vendor"), keytest.New(t, "Mallory")
	dir := t.TempDir()
	pay := filepath.Join(dir, "signed.raw")
	if _, err := osimage.BuildPayload(ctx, osimage.Request{Usr: usrTree(t, dir, "2.0.0"), Version: "2.0.0", Arch: "x86-64",
		Sign: &osimage.Signer{Key: mallory.Signer, Cert: mallory.Cert}}, pay); err != nil {
		t.Fatal(err)
	}
	payload, err := os.ReadFile(pay)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	f := newFakeOmaha(t, map[string][]byte{"signed.raw": payload})
	f.answer = func(b string) []byte {
		return offerXML(b, "2.0.0", "signed.raw", int64(len(payload)), base64.StdEncoding.EncodeToString(sum[:]), "")
	}
	n := e.node(t)
	write(t, n.root, "/etc/verity.d/vendor.crt", string(vendor.CertPEM))
	a := n.agent(t, "A", nil)
	a.Config.Server = f.url + "/v1/update/"
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = a.RunOnce(ctx, true)
	if err == nil || !strings.Contains(err.Error(), `signed by "CN=Mallory"`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v, want one line naming the untrusted signer", err)
	}
	evs, fails := f.failures()
	if len(fails) != 1 || fails[0] != "3/0:268435474" { // 18 | kActionCodeNonDefaultServer (1<<28)
		t.Fatalf("events %q, want one 3/0:268435474", evs)
	}
	if next, infos := n.slots(t); next != "A" || infos[1].Record != nil {
		t.Fatalf("slot B was armed or written: next %s, B %+v", next, infos[1])
	}
}
