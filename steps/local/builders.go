package local

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps/flake"
)

// builder is one of Nix's remote builders: a line of the builders setting
// (or of the machines file it names with @).
type builder struct {
	URI     string
	Systems []string
}

// builds reports whether the builder builds system.
func (b builder) builds(system string) bool { return slices.Contains(b.Systems, system) }

// linuxBuilder reports whether b is nix-darwin's linux-builder, the Linux
// VM a Mac builds Linux systems in (ssh-ng://builder@linux-builder).
func (b builder) linuxBuilder() bool {
	host := b.URI
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	return host == "linux-builder" || strings.HasPrefix(host, "linux-builder:")
}

func (b builder) describe() string {
	if b.linuxBuilder() {
		return "nix-darwin's linux-builder (" + b.URI + ")"
	}
	return "the remote builder " + b.URI
}

// nixBuilders reads Nix's builders setting as nix itself resolves it
// (nix.conf, includes, NIX_CONFIG): `nix config show builders`, or on a Nix
// older than 2.20, which lacks that command, the builders line of
// `nix show-config`. Nix not answering leaves no builders.
func nixBuilders(ctx context.Context) []builder {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	value, ok := nixSetting(ctx, "builders")
	if !ok {
		return nil
	}
	return parseBuilders(value, 0)
}

// nixSetting returns the value of one nix setting.
func nixSetting(ctx context.Context, name string) (string, bool) {
	if _, err := exec.LookPath("nix"); err != nil {
		return "", false
	}
	args := append(append([]string(nil), flake.NixFeatures...), "config", "show", name)
	if out, err := exec.CommandContext(ctx, "nix", args...).Output(); err == nil {
		return strings.TrimSpace(string(out)), true
	}
	args = append(append([]string(nil), flake.NixFeatures...), "show-config")
	out, err := exec.CommandContext(ctx, "nix", args...).Output()
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, found := strings.Cut(line, "="); found && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// parseBuilders reads the builders syntax: machines separated by ";" or
// newlines, each `URI SYSTEMS KEY JOBS …` with SYSTEMS comma-separated and
// "-" for a default; "@file" reads the machines from a file.
func parseBuilders(value string, depth int) []builder {
	var out []builder
	for _, part := range strings.FieldsFunc(value, func(r rune) bool { return r == ';' || r == '\n' }) {
		part = strings.TrimSpace(part)
		if i := strings.IndexByte(part, '#'); i >= 0 {
			part = strings.TrimSpace(part[:i])
		}
		if part == "" {
			continue
		}
		if file, ok := strings.CutPrefix(part, "@"); ok {
			if data, err := os.ReadFile(file); err == nil && depth < 2 {
				out = append(out, parseBuilders(string(data), depth+1)...)
			}
			continue
		}
		f := strings.Fields(part)
		b := builder{URI: f[0]}
		if len(f) > 1 && f[1] != "-" {
			b.Systems = strings.Split(f[1], ",")
		}
		out = append(out, b)
	}
	return out
}
