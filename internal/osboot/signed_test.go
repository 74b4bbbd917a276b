package osboot

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/osimage"
	"github.com/stratalinux/strata/internal/slot"
	"github.com/stratalinux/strata/internal/testutil/keytest"
)

// signed is record(version, hash) with its root hash signed by k.
func signed(t *testing.T, version, hash string, k keytest.Key) SlotRecord {
	t.Helper()
	r := record(version, hash)
	if err := osimage.SignRecord(&r.Record, osimage.Signer{Key: k.Signer, Cert: k.Cert}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPlanWithTrustedCertificatesRequiresSignedSlot(t *testing.T) {
	vendor, mallory := keytest.New(t, "OS vendor"), keytest.New(t, "Mallory")
	trusted := []*x509.Certificate{vendor.Cert}
	opt, _ := ParseCmdline("console=ttyS0")
	armed := table(slot.Attr{Priority: 1, Successful: true}, slot.Attr{Priority: 2, Tries: 1})

	// B signed by the trusted vendor: booted, trust "signed", the signer named.
	recs := map[string]SlotRecord{"A": signed(t, "1.0.0", hashA, vendor), "B": signed(t, "2.0.0", hashB, vendor)}
	p, err := Plan(opt, armed, recs, trusted)
	if err != nil {
		t.Fatal(err)
	}
	if p.Slot.Name != "B" || p.Trust != TrustSigned || p.Signer != "CN=OS vendor" || hexOf(p.RootHash) != hashB {
		t.Fatalf("plan %+v", p)
	}

	// Unsigned, or signed by someone else, or a signature copied from another slot: refused after the
	// slot was chosen, so its try is used up and the next boot takes A.
	other := signed(t, "2.0.0", hashA, vendor) // a valid signature, over A's root hash
	other.Record.RootHash = hashB
	for name, b := range map[string]SlotRecord{
		"unsigned":           record("2.0.0", hashB),
		"untrusted signer":   signed(t, "2.0.0", hashB, mallory),
		"signature of other": other,
	} {
		recs["B"] = b
		_, err := Plan(opt, armed, recs, trusted)
		var se *SlotError
		if !errors.As(err, &se) || se.Plan.Slot.Name != "B" || !se.Plan.Decrement {
			t.Fatalf("%s: want a SlotError for B with its try used, got %v", name, err)
		}
		if name == "unsigned" && !errors.Is(err, osimage.ErrUnsigned) {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "untrusted signer" && (!errors.Is(err, osimage.ErrUntrusted) || !strings.Contains(err.Error(), `signed by "CN=Mallory"`)) {
			t.Fatalf("%s: error does not name the signer: %v", name, err)
		}
	}

	// Without trusted certificates a signed slot boots as before (trust from the record).
	recs["B"] = signed(t, "2.0.0", hashB, mallory)
	if p, err := Plan(opt, armed, recs, nil); err != nil || p.Trust != TrustRecord {
		t.Fatalf("no trusted certificates: %+v, %v", p, err)
	}

	// A command line that pins slot and hash is trusted as it stands (its boot loader vouches for it).
	pin, _ := ParseCmdline("verity.usr=PARTUUID=" + slot.USRB.String() + " verity.usrhash=" + hashB)
	recs["B"] = record("2.0.0", hashB)
	if p, err := Plan(pin, armed, recs, trusted); err != nil || p.Trust != TrustCmdline {
		t.Fatalf("pinned: %+v, %v", p, err)
	}
}
