package steps

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// opensshKey builds a minimal openssh-key-v1 container with the given cipher
// name: enough for KeyEncrypted, which reads only the header.
func opensshKey(cipher string) []byte {
	var b []byte
	b = append(b, "openssh-key-v1\x00"...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(cipher)))
	b = append(b, cipher...)
	b = append(b, make([]byte, 64)...)
	return pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: b})
}

func writeKey(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateBadInput(t *testing.T) {
	dir := t.TempDir()
	extra := filepath.Join(dir, "keys")
	if err := os.Mkdir(extra, 0o700); err != nil {
		t.Fatal(err)
	}
	goodKey := writeKey(t, dir, "id_ok", opensshKey("none"), 0o600)
	openKey := writeKey(t, dir, "id_open", opensshKey("none"), 0o644)
	encKey := writeKey(t, dir, "id_enc", opensshKey("aes256-ctr"), 0o600)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pubFile := writeKey(t, dir, "id_ok.pub", []byte("ssh-ed25519 "+string(pub[:4])), 0o600)
	spaced := writeKey(t, dir, "my key", opensshKey("none"), 0o600)

	base := DefaultConfig()
	base.Host = "203.0.113.7"
	base.ExtraFiles = extra

	cases := []struct {
		name    string
		mod     func(c *Config)
		wantErr string // substring of the message; "" means valid
		is      error
	}{
		{"valid", func(c *Config) {}, "", nil},
		{"valid ipv6", func(c *Config) { c.Host = "2001:db8::1" }, "", nil},
		{"valid name", func(c *Config) { c.Host = "vps.example.org" }, "", nil},
		{"valid key with spaces in path", func(c *Config) { c.Identity = spaced }, "", nil},
		{"empty host", func(c *Config) { c.Host = "" }, "pass --host", nil},
		{"bad ipv4", func(c *Config) { c.Host = "256.1.1.1" }, "not a valid IPv4", nil},
		{"host with space", func(c *Config) { c.Host = "my host" }, "whitespace", nil},
		{"host with shell", func(c *Config) { c.Host = "h;reboot" }, "neither an IP", nil},
		{"port 0", func(c *Config) { c.Port = 0 }, "1 to 65535", nil},
		{"port 70000", func(c *Config) { c.Port = 70000 }, "1 to 65535", nil},
		{"user injection", func(c *Config) { c.User = "root;rm -rf /" }, "not a valid login name", nil},
		{"flake without fragment", func(c *Config) { c.Flake = "." }, "<flake>#<name>", nil},
		{"missing extra files", func(c *Config) { c.ExtraFiles = filepath.Join(dir, "nope") }, "is missing", nil},
		{"extra files is a file", func(c *Config) { c.ExtraFiles = goodKey }, "not a folder", nil},
		{"missing key", func(c *Config) { c.Identity = filepath.Join(dir, "absent") }, "is missing", nil},
		{"key mode 0644", func(c *Config) { c.Identity = openKey }, "chmod 600", ErrKeyMode},
		{"passphrase key", func(c *Config) { c.Identity = encKey }, "ssh-add", ErrKeyEncrypted},
		{"public key given", func(c *Config) { c.Identity = pubFile }, "not a private key", nil},
		{"bad build-on", func(c *Config) { c.BuildOn = "cloud" }, "auto, local or remote", nil},
		{"bad output", func(c *Config) { c.Output = "xml" }, "tui, plain or json", nil},
		{"bad ram", func(c *Config) { c.RAM = "lots" }, "24G", nil},
		{"bad phase", func(c *Config) { c.Phases = "disko,format" }, "unknown phase", nil},
		{"bad ssh option", func(c *Config) { c.SSHOptions = []string{"ControlMaster"} }, "KEY=VALUE", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			c.mod(&cfg)
			err := cfg.Validate()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", c.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v does not wrap %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %q does not say %q", err, c.wantErr)
			}
		})
	}
}

func TestValidatePortText(t *testing.T) {
	for in, ok := range map[string]bool{"22": true, "2222": true, "0": false, "70000": false, "abc": false, "": false} {
		if _, err := ValidatePort(in); (err == nil) != ok {
			t.Errorf("ValidatePort(%q) err=%v, want ok=%v", in, err, ok)
		}
	}
}

func TestParseRAM(t *testing.T) {
	cases := map[string]int64{
		"24G": 24 << 30, "24GiB": 24 << 30, "24gb": 24 << 30, "1.5G": 3 << 29, "512M": 512 << 20, "2t": 2 << 40,
		"256M": MinRAM, "16T": MaxRAM, "262144K": 256 << 20, " 8 G ": 8 << 30,
		// A bare number means GiB, never bytes.
		"24": 24 << 30, "1.5": 3 << 29,
	}
	for in, want := range cases {
		got, err := ParseRAM(in)
		if err != nil || got != want {
			t.Errorf("ParseRAM(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	// Each refusal says what to type (a value with a unit), and why.
	bad := map[string]string{
		"":                             "24G",
		"lots":                         "with a unit",
		"G":                            "with a unit",
		"24 apples":                    "with a unit",
		"-1G":                          "with a unit",
		"0":                            "more than zero",
		"0G":                           "more than zero",
		"1K":                           "too small",
		"255M":                         "the smallest is 256M",
		"0.1":                          "a bare number means GiB",
		"512B":                         "byte count",
		"1048576":                      "a bare number means GiB, not bytes",
		"99999T":                       "the largest is 16T",
		"16.001T":                      "too large",
		"9223372036854775807T":         "too large",
		strings.Repeat("9", 400) + "G": "far too large",
		"24GI":                         "with a unit",
		"1e3G":                         "with a unit",
	}
	for in, want := range bad {
		n, err := ParseRAM(in)
		if err == nil {
			t.Errorf("ParseRAM(%q) = %d, accepted", in, n)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseRAM(%q): %v does not wrap ErrInvalidConfig", in, err)
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "24G") && !strings.Contains(err.Error(), "256M") {
			t.Errorf("ParseRAM(%q) = %v; want it to say %q and what to type", in, err, want)
		}
	}
}

// TestValidateOptions: each nixos-anywhere option bigbang passes on is
// checked before anything runs, and the error says what to give.
func TestValidateOptions(t *testing.T) {
	dir := t.TempDir()
	keys := dir
	loose := filepath.Join(dir, "loose.key")
	tight := filepath.Join(dir, "disk.key")
	_ = os.WriteFile(loose, []byte("k"), 0o644)
	_ = os.WriteFile(tight, []byte("k"), 0o600)
	_ = os.Chmod(loose, 0o644)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // in the error; "" for none
	}{
		{"kexec URL", func(c *Config) { c.Kexec = "https://example.org/k.tar.gz" }, ""},
		{"kexec missing file", func(c *Config) { c.Kexec = filepath.Join(dir, "none.tar.gz") }, "neither an http(s) URL nor a file"},
		{"hardware config", func(c *Config) {
			c.HardwareConfig, c.HardwareConfigPath = "nixos-facter", filepath.Join(dir, "facter.json")
		}, ""},
		{"hardware config without a path", func(c *Config) { c.HardwareConfig = "nixos-facter" }, "needs --hardware-config-path"},
		{"hardware config tool", func(c *Config) { c.HardwareConfig, c.HardwareConfigPath = "lshw", filepath.Join(dir, "x") }, "use nixos-facter or nixos-generate-config"},
		{"hardware config folder missing", func(c *Config) {
			c.HardwareConfig, c.HardwareConfigPath = "nixos-generate-config", filepath.Join(dir, "no", "hw.nix")
		}, "its folder does not exist"},
		{"disk key", func(c *Config) { c.DiskKeys = []string{"/tmp/disk.key=" + tight} }, ""},
		{"disk key shape", func(c *Config) { c.DiskKeys = []string{tight} }, "REMOTE=LOCAL"},
		{"disk key others can read", func(c *Config) { c.DiskKeys = []string{"/tmp/disk.key=" + loose} }, "chmod 600"},
		{"disk key missing", func(c *Config) { c.DiskKeys = []string{"/tmp/disk.key=" + filepath.Join(dir, "none")} }, "is not a file here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Host, c.ExtraFiles = "203.0.113.7", keys
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig)):
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}
