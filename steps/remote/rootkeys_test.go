package remote

import (
	"reflect"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// The login key of the fixtures, and another key.
const (
	loginBlob = "AAAAC3NzaC1lZDI1NTE5AAAAIIfbQeej6W1FdXzSFlJNvPeFfgz4CwBohxs5WEQMKdIt"
	loginFP   = "SHA256:/Z69+rhtQfEi+8IG47khKCB8NZSQwLI2ujnIboap9Pk"
	otherBlob = "AAAAC3NzaC1lZDI1NTE5AAAAIAHrIt8SAy8cb8PUUt8IMeF3R07COFdhWzn1cZrdTPXy"
)

// opcKeys is what the facts script prints of the authorized_keys files of
// an Oracle Linux VM where opc logs in with the key in its
// ~/.ssh/authorized_keys (cloud-init's), read as root through sudo.
const opcKeys = `authkey_file=read /home/opc/.ssh/authorized_keys
authkey=ssh-ed25519 ` + loginBlob + ` /home/opc/.ssh/authorized_keys
authkey_file=absent /home/opc/.ssh/authorized_keys2
authkey_file=absent /etc/ssh/authorized_keys.d/opc
authkey_file=read /root/.ssh/authorized_keys
authkey=ssh-ed25519 ` + otherBlob + ` /root/.ssh/authorized_keys
authkey_file=absent /root/.ssh/authorized_keys2
authkey_file=absent /etc/ssh/authorized_keys.d/root
authkeys_writable=1
authkeys_mode=700 1000 /home/opc
authkeys_mode=700 1000 /home/opc/.ssh
authkeys_mode=600 1000 /home/opc/.ssh/authorized_keys
sshd=authorizedkeysfile .ssh/authorized_keys
sshd=authorizedkeyscommand none
sshd=strictmodes yes
sshd=maxauthtries 6
`

func opcFacts(t *testing.T, lines string) Facts {
	t.Helper()
	f, err := ParseFacts(strings.NewReader("facts_version=1\nuser=opc\nuid=1000\nhome=/home/opc\nos_id=ol\n" + lines + "end=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseRootKeyFacts(t *testing.T) {
	f := opcFacts(t, opcKeys)
	if f.AuthKeyFiles["/home/opc/.ssh/authorized_keys"] != "read" || f.AuthKeyFiles["/etc/ssh/authorized_keys.d/root"] != "absent" || len(f.AuthKeyFiles) != 6 {
		t.Errorf("files = %v", f.AuthKeyFiles)
	}
	if len(f.AuthKeys) != 2 || f.AuthKeys[0].Fingerprint != loginFP || f.AuthKeys[0].File != "/home/opc/.ssh/authorized_keys" {
		t.Errorf("keys = %+v", f.AuthKeys)
	}
	if !f.AuthKeysWritable || len(f.AuthKeysModes) != 3 || f.AuthKeysModes[2] != (PathMode{Path: "/home/opc/.ssh/authorized_keys", Mode: 0o600, UID: 1000}) {
		t.Errorf("writable %v modes %+v", f.AuthKeysWritable, f.AuthKeysModes)
	}
	if f.SSHD["authorizedkeysfile"] != ".ssh/authorized_keys" || f.SSHD["strictmodes"] != "yes" {
		t.Errorf("sshd = %v", f.SSHD)
	}
	back, err := ParseFacts(strings.NewReader(FormatFacts(f)))
	if err != nil || !reflect.DeepEqual(back.AuthKeyFiles, f.AuthKeyFiles) || !reflect.DeepEqual(back.AuthKeys, f.AuthKeys) ||
		!reflect.DeepEqual(back.AuthKeysModes, f.AuthKeysModes) || !reflect.DeepEqual(back.SSHD, f.SSHD) || back.AuthKeysWritable != f.AuthKeysWritable {
		t.Errorf("FormatFacts round trip: %v\n%+v\n%+v", err, back, f)
	}
}

func TestRootKeysCases(t *testing.T) {
	withI := CheckOptions{AuthKeyFingerprint: loginFP, AuthKeyFile: "/home/me/.ssh/oci", Identity: "/home/me/.ssh/oci", IdentityAccepted: true, Host: "203.0.113.7", LoginUser: "opc"}
	agent := CheckOptions{AuthKeyFingerprint: loginFP, Host: "203.0.113.7", LoginUser: "opc"}
	replace := func(old, new string) func(string) string {
		return func(s string) string { return strings.ReplaceAll(s, old, new) }
	}
	tests := []struct {
		name   string
		edit   func(string) string
		facts  func(*Facts)
		opts   CheckOptions
		status steps.Status
		words  []string
	}{
		{"-i key in ~/.ssh/authorized_keys travels", nil, nil, withI, steps.StatusOK,
			[]string{"/home/opc/.ssh/authorized_keys", "the kexec installer copies to root"}},
		{"-i key only in authorized_keys.d of the user: the kexec image copies it", replace("/home/opc/.ssh/authorized_keys\nauthkey_file=absent /home/opc/.ssh/authorized_keys2\nauthkey_file=absent /etc/ssh/authorized_keys.d/opc",
			"/etc/ssh/authorized_keys.d/opc\nauthkey_file=absent /home/opc/.ssh/authorized_keys2\nauthkey_file=read /etc/ssh/authorized_keys.d/opc"), nil, withI, steps.StatusOK,
			[]string{"/etc/ssh/authorized_keys.d/opc"}},
		{"installer: -i key only in authorized_keys.d of the user (catalogue: Permission denied for root@)",
			replace("/home/opc/.ssh/authorized_keys\nauthkey_file=absent /home/opc/.ssh/authorized_keys2\nauthkey_file=absent /etc/ssh/authorized_keys.d/opc",
				"/etc/ssh/authorized_keys.d/opc\nauthkey_file=absent /home/opc/.ssh/authorized_keys2\nauthkey_file=read /etc/ssh/authorized_keys.d/opc"),
			func(f *Facts) { f.OSID, f.OSVariantID = "nixos", "installer" }, withI, steps.StatusFail,
			[]string{"only in /etc/ssh/authorized_keys.d/opc", "copies only ~/.ssh/authorized_keys", "Permission denied", "cat /etc/ssh/authorized_keys.d/opc >> ~/.ssh/authorized_keys"}},
		{"-i key from an AuthorizedKeysCommand", replace("authkey=ssh-ed25519 "+loginBlob+" /home/opc/.ssh/authorized_keys\n", ""),
			func(f *Facts) { f.SSHD["authorizedkeyscommand"] = "/usr/bin/google_authorized_keys" }, withI, steps.StatusFail,
			[]string{"AuthorizedKeysCommand (/usr/bin/google_authorized_keys)", "root@203.0.113.7", "ssh-copy-id -f -i /home/me/.ssh/oci opc@203.0.113.7"}},
		{"-i key from another AuthorizedKeysFile", replace("authkey=ssh-ed25519 "+loginBlob+" /home/opc/.ssh/authorized_keys\n", ""),
			func(f *Facts) { f.SSHD["authorizedkeysfile"] = "/etc/ssh/keys/%u" }, withI, steps.StatusFail,
			[]string{"AuthorizedKeysFile /etc/ssh/keys/%u", "ssh-copy-id -f"}},
		{"-i key not found, root's files unreadable", func(s string) string {
			s = strings.ReplaceAll(s, "authkey=ssh-ed25519 "+loginBlob+" /home/opc/.ssh/authorized_keys\n", "")
			return strings.ReplaceAll(s, "authkey_file=read /root/.ssh/authorized_keys", "authkey_file=unknown /root/.ssh/authorized_keys")
		}, nil, withI, steps.StatusWarn, []string{"/root/.ssh/authorized_keys could not be read", "passwordless sudo"}},
		{"login key not known", nil, nil, CheckOptions{Identity: "/k", IdentityAccepted: true}, steps.StatusSkip, []string{"not known"}},
		{"no -i: install key goes into a writable file sshd reads", nil, nil, agent, steps.StatusOK,
			[]string{"nixos-anywhere's own install key", "writable, read by sshd"}},
		{"no -i, home-manager's read-only authorized_keys (catalogue: the upload loops)", func(s string) string {
			return strings.ReplaceAll(s, "authkeys_writable=1", "authkeys_writable=0\nauthkeys_link=/nix/store/abc-home-manager-files/.ssh/authorized_keys")
		}, nil, agent, steps.StatusFail,
			[]string{"read-only link into /nix/store/abc-home-manager-files", "retries forever", "pass -i the private key file of the agent key", "home.file"}},
		{"no -i, read-only file, logged in with a key file", replace("authkeys_writable=1", "authkeys_writable=0"), nil,
			CheckOptions{AuthKeyFingerprint: loginFP, AuthKeyFile: "/home/me/.ssh/id_ed25519"}, steps.StatusFail,
			[]string{"cannot be written by opc", "pass -i /home/me/.ssh/id_ed25519"}},
		{"no -i, sshd does not read ~/.ssh/authorized_keys", nil, func(f *Facts) { f.SSHD["authorizedkeysfile"] = "/etc/ssh/authorized_keys.d/%u" }, agent, steps.StatusFail,
			[]string{"AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u", "would not log in"}},
		{"no -i, %h in AuthorizedKeysFile", nil, func(f *Facts) { f.SSHD["authorizedkeysfile"] = "%h/.ssh/authorized_keys" }, agent, steps.StatusOK, nil},
		{"no -i, group-writable home under StrictModes", replace("authkeys_mode=700 1000 /home/opc\n", "authkeys_mode=775 1000 /home/opc\n"), nil, agent, steps.StatusFail,
			[]string{"StrictModes", "/home/opc is group- or world-writable (mode 0775)", "chmod go-w"}},
		{"no -i, group-writable home, StrictModes off", replace("authkeys_mode=700 1000 /home/opc\n", "authkeys_mode=775 1000 /home/opc\n"),
			func(f *Facts) { f.SSHD["strictmodes"] = "no" }, agent, steps.StatusOK, nil},
		{"no -i, sshd's configuration unreadable", func(s string) string {
			var keep []string
			for _, l := range strings.Split(s, "\n") {
				if !strings.HasPrefix(l, "sshd=") {
					keep = append(keep, l)
				}
			}
			return strings.Join(keep, "\n")
		}, nil, agent, steps.StatusOK, []string{"could not be read"}},
		{"no -i, the login key file does not travel (catalogue: All keys were skipped)", replace("authkey=ssh-ed25519 "+loginBlob+" /home/opc/.ssh/authorized_keys\n", ""),
			func(f *Facts) { f.SSHD["authorizedkeyscommand"] = "/usr/bin/sss_ssh_authorizedkeys" }, CheckOptions{AuthKeyFingerprint: loginFP, AuthKeyFile: "/home/me/.ssh/id_ed25519", Host: "h"},
			steps.StatusWarn, []string{"IdentityFile", "All keys were skipped", "root@h", "pass -i"}},
		{"-i key the target does not accept yet goes in with ssh-copy-id", nil, nil,
			CheckOptions{AuthKeyFingerprint: loginFP, Identity: "/home/me/.ssh/new", IdentityAccepted: false}, steps.StatusOK, []string{"the -i key /home/me/.ssh/new"}},
		{"installer, root login", nil, func(f *Facts) { f.OSID, f.OSVariantID, f.IsRoot = "nixos", "installer", true }, withI, steps.StatusOK, []string{"as root"}},
		{"phases without kexec", nil, nil, CheckOptions{AuthKeyFingerprint: loginFP, SkipKexec: true}, steps.StatusSkip, []string{"leaves kexec out"}},
		{"old facts without the files", func(string) string { return "" }, nil, withI, steps.StatusSkip, []string{"were not read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := opcKeys
			if tt.edit != nil {
				lines = tt.edit(lines)
			}
			f := opcFacts(t, lines)
			if tt.facts != nil {
				if f.SSHD == nil {
					f.SSHD = map[string]string{}
				}
				tt.facts(&f)
			}
			c := checkRootKeys(f, tt.opts)
			if c.Status != tt.status {
				t.Fatalf("status = %s, want %s: %s (fix: %s)", c.Status, tt.status, c.Summary, c.Fix)
			}
			for _, w := range tt.words {
				if !strings.Contains(c.Summary+" "+c.Fix, w) {
					t.Errorf("does not say %q: %s / %s", w, c.Summary, c.Fix)
				}
			}
			if (c.Status == steps.StatusFail || c.Status == steps.StatusWarn) && c.Fix == "" {
				t.Errorf("%s without a fix", c.Status)
			}
		})
	}
}
