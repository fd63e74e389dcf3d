package remote_test

import (
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// rootKeysOn runs the real facts script on a real-sshd test host started
// with opts, logged in with the client key (as -i), and returns the facts
// and remote.root_keys as the preflight gives it.
func rootKeysOn(t *testing.T, opts testhost.Options) (remote.Facts, steps.Check) {
	t.Helper()
	h, f, o := factsOn(t, opts)
	if o.AuthKeyFile != h.ClientKey || !strings.HasPrefix(o.AuthKeyFingerprint, "SHA256:") {
		t.Fatalf("the connection does not say which key logged in: %+v", o)
	}
	o.Identity, o.IdentityAccepted, o.Host = h.ClientKey, true, h.IP
	for _, ch := range remote.Checks(f, steps.TargetExpect{}, o) {
		if ch.ID == remote.IDRootKeys {
			return f, ch
		}
	}
	t.Fatal("no remote.root_keys check")
	return f, steps.Check{}
}

// TestRootKeysOnTestHost runs the keys-reach-root check against the real
// sshd: with the client key in /etc/ssh/authorized_keys.d/<user> (the
// machine's /etc/ssh in the test host's namespace), which the kexec image
// copies to root, and with the key only in a file of the test's own,
// which nothing copies. sshd's settings come from `sshd -T` over the
// configuration the running sshd was started with.
func TestRootKeysOnTestHost(t *testing.T) {
	testutil.NeedRoot(t, "the test host's /etc/ssh (authorized_keys.d) is a mount namespace's, which needs root")
	t.Run("authorized_keys.d", func(t *testing.T) {
		f, c := rootKeysOn(t, testhost.Options{})
		if !strings.Contains(f.SSHD["authorizedkeysfile"], "/etc/ssh/authorized_keys.d/%u") || f.SSHD["strictmodes"] != "no" {
			t.Fatalf("sshd -T was not read from the running sshd's configuration: %v", f.SSHD)
		}
		t.Logf("sshd -T: %v; %s", f.SSHD, c.Summary)
		d := "/etc/ssh/authorized_keys.d/" + f.User
		if f.AuthKeyFiles[d] != "read" {
			t.Fatalf("%s: %q (files %v)", d, f.AuthKeyFiles[d], f.AuthKeyFiles)
		}
		if c.Status != steps.StatusOK || !strings.Contains(c.Summary, d) || !strings.Contains(c.Summary, "the kexec installer copies to root") {
			t.Fatalf("%s: %s (fix: %s)", c.Status, c.Summary, c.Fix)
		}
	})
	t.Run("key outside the files that travel", func(t *testing.T) {
		f, c := rootKeysOn(t, testhost.Options{KeysOutsideRoot: true})
		t.Logf("%s", c.Summary)
		if _, ok := f.AuthKeyFiles["/etc/ssh/authorized_keys.d/"+f.User]; !ok {
			t.Fatalf("files %v", f.AuthKeyFiles)
		}
		if c.Status != steps.StatusFail || !strings.Contains(c.Summary, "will not reach root") || !strings.Contains(c.Summary, "AuthorizedKeysFile") ||
			!strings.Contains(c.Fix, "ssh-copy-id -f -i") {
			t.Fatalf("%s: %s (fix: %s)", c.Status, c.Summary, c.Fix)
		}
	})
}
