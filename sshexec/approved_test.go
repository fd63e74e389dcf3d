package sshexec

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testhost"
)

// TestApprovedHostKey pins the consent of the wizard: the key approved on
// the first connection is the only one the second connection trusts. A
// different key (another machine now answers on the address) is refused
// and known_hosts keeps its exact content.
func TestApprovedHostKey(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	hostFP := fingerprintOfLine(t, h.HostKeyPub())
	// The fingerprint of a key the test host does not have: what the first
	// connection showed when another machine answered it.
	other, err := NewSimServer([]byte("another machine on the same address"), func(string, io.Reader, io.Writer, io.Writer) int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	otherFP := other.HostKeyFingerprint()
	other.Close()
	const before = "unrelated.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
	for _, tt := range []struct {
		name      string
		approved  string
		accept    bool // AcceptNewHostKey must not widen the consent
		wantErr   bool
		wantSaved bool
	}{
		{name: "the approved key is trusted and saved", approved: hostFP, wantSaved: true},
		{name: "another key is refused", approved: otherFP, wantErr: true},
		{name: "another key is refused even with AcceptNewHostKey", approved: otherFP, accept: true, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(before), 0o600); err != nil {
				t.Fatal(err)
			}
			o := opts(h, kh)
			o.ApprovedHostKey, o.AcceptNewHostKey = tt.approved, tt.accept
			o.PromptHostKey = func(context.Context, HostKeyInfo) (bool, error) {
				t.Error("the operator was asked again about a key already approved")
				return true, nil
			}
			c, err := Dial(context.Background(), o)
			data, _ := os.ReadFile(kh)
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("a key other than the approved one was trusted")
				}
				if !errors.Is(err, ErrHostKeyChangedSinceApproval) || !errors.Is(err, ErrHostKeyMismatch) {
					t.Fatalf("err = %v, want ErrHostKeyChangedSinceApproval", err)
				}
				for _, want := range []string{"changed between the two connections", otherFP, hostFP} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error does not say %q: %v", want, err)
					}
				}
				if string(data) != before {
					t.Fatalf("known_hosts changed after a refusal: %q", data)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if !tt.wantSaved || !strings.HasPrefix(string(data), before) || !strings.Contains(string(data), strings.Fields(h.HostKeyPub())[1]) {
				t.Fatalf("known_hosts = %q, want the approved key added", data)
			}
		})
	}
}
