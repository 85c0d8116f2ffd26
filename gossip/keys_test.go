package gossip

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip.keyring")
	kr, created, err := LoadOrCreateKeyring(path)
	if err != nil || !created {
		t.Fatalf("first start: %v, created %v", err, created)
	}
	again, created, err := LoadOrCreateKeyring(path)
	if err != nil || created || again.Keys().Keys[0] != kr.Keys().Keys[0] {
		t.Fatalf("second start: %v, created %v: the key must be kept", err, created)
	}
	for _, bad := range []struct {
		keys Keys
		want string
	}{
		{Keys{}, "no gossip keys"},
		{Keys{Keys: []string{"!!"}}, "not base64"},
		{Keys{Keys: []string{"c2hvcnQ="}}, "5 bytes, want 32"},
	} {
		if _, err := NewKeyring("", bad.keys); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("NewKeyring(%v): %v, want %q", bad.keys, err, bad.want)
		}
	}
	// Replace catches a member up: exactly the given keys, the first primary.
	k1, _ := NewKey()
	k2, _ := NewKey()
	if err := kr.Replace(encodeKeys([][]byte{k2, k1})); err != nil {
		t.Fatal(err)
	}
	all, primary := kr.Fingerprints()
	if primary != Fingerprint(k2) || len(all) != 2 {
		t.Errorf("after Replace: %v primary %s", all, primary)
	}
	saved, err := LoadKeyring(path)
	if err != nil || saved.Keys().Keys[0] != kr.Keys().Keys[0] || len(saved.Keys().Keys) != 2 {
		t.Errorf("the file after Replace: %v, %v", saved, err)
	}
}
