package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"
)

// Errors of the sops checks, matched with errors.Is.
var (
	// ErrSopsConfig: .sops.yaml cannot be read as sops reads it.
	ErrSopsConfig = errors.New(".sops.yaml is not valid")
	// ErrNotSops: a secrets file has no sops metadata.
	ErrNotSops = errors.New("not a sops file")
	// ErrNoRule: no creation rule of .sops.yaml covers the file.
	ErrNoRule = errors.New("no .sops.yaml rule covers the file")
	// ErrNotRecipient: the rule for the file does not list the host key.
	ErrNotRecipient = errors.New("the host key is not a recipient in .sops.yaml")
	// ErrNotReencrypted: .sops.yaml lists the host key but the file was not
	// encrypted to it since (sops updatekeys was not run).
	ErrNotReencrypted = errors.New("the file is not encrypted to the host key")
	// ErrDecrypt: the file's stanza for the host key does not decrypt.
	ErrDecrypt = errors.New("the host key cannot decrypt the file's data key")
)

// Rule is one creation rule of .sops.yaml, reduced to its age recipients.
type Rule struct {
	PathRegex string
	re        *regexp.Regexp
	Age       []string // every age recipient of the rule, key groups included
}

// SopsConfig is .sops.yaml's creation rules.
type SopsConfig struct {
	Path  string
	Rules []Rule
}

type rawKeyGroup struct {
	Merge []rawKeyGroup `yaml:"merge"`
	Age   []string      `yaml:"age"`
}

type rawRule struct {
	PathRegex string        `yaml:"path_regex"`
	Age       any           `yaml:"age"`
	KeyGroups []rawKeyGroup `yaml:"key_groups"`
}

// splitRecipients reads recipients as sops does: comma-separated, spaces
// around them ignored.
func splitRecipients(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

func groupAge(g rawKeyGroup) []string {
	var out []string
	for _, m := range g.Merge {
		out = append(out, groupAge(m)...)
	}
	for _, a := range g.Age {
		out = append(out, splitRecipients(a)...)
	}
	return out
}

// LoadSopsConfig reads .sops.yaml.
func LoadSopsConfig(path string) (*SopsConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSopsConfig, err)
	}
	var raw struct {
		CreationRules []rawRule `yaml:"creation_rules"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %v: fix its YAML (sops reads creation_rules from it)", ErrSopsConfig, path, err)
	}
	c := &SopsConfig{Path: path}
	for i, r := range raw.CreationRules {
		rule := Rule{PathRegex: r.PathRegex}
		if r.PathRegex != "" {
			re, err := regexp.Compile(r.PathRegex)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: rule %d: path_regex %q: %v", ErrSopsConfig, path, i+1, r.PathRegex, err)
			}
			rule.re = re
		}
		switch a := r.Age.(type) {
		case nil:
		case string:
			rule.Age = splitRecipients(a)
		case []any:
			for _, x := range a {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("%w: %s: rule %d: age must be a string or a list of strings", ErrSopsConfig, path, i+1)
				}
				rule.Age = append(rule.Age, splitRecipients(s)...)
			}
		default:
			return nil, fmt.Errorf("%w: %s: rule %d: age must be a string or a list of strings", ErrSopsConfig, path, i+1)
		}
		for _, g := range r.KeyGroups {
			rule.Age = append(rule.Age, groupAge(g)...)
		}
		c.Rules = append(c.Rules, rule)
	}
	return c, nil
}

// RuleFor returns the rule sops uses for file: the first whose path_regex
// matches the path relative to .sops.yaml's folder (or that has none).
func (c *SopsConfig) RuleFor(file string) (*Rule, error) {
	rel := file
	if abs, err := filepath.Abs(file); err == nil {
		if dir, err := filepath.Abs(filepath.Dir(c.Path)); err == nil {
			rel = strings.TrimPrefix(abs, dir+string(filepath.Separator))
		}
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.re == nil || r.re.MatchString(rel) {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNoRule, rel)
}

// Has reports whether the rule lists recipient.
func (r *Rule) Has(recipient string) bool {
	for _, a := range r.Age {
		if a == recipient {
			return true
		}
	}
	return false
}

// FindSecrets lists the files under root that a rule of c covers and that
// are sops files, plus the extra ones given (the flake's defaultSopsFile),
// sorted. The .git folder, .sops.yaml and flake.lock are left out, and so
// is skip (the extra-files tree, which holds keys, not secrets).
func (c *SopsConfig) FindSecrets(root string, skip string, extra ...string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	skipAbs, _ := filepath.Abs(skip)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if abs, _ := filepath.Abs(p); (d.Name() == ".git" || d.Name() == "node_modules" || abs == skipAbs) && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || d.Name() == ".sops.yaml" || d.Name() == "flake.lock" {
			return nil
		}
		if _, err := c.RuleFor(p); err != nil {
			return nil
		}
		// A rule such as ".*" covers every file: only sops files count.
		if IsSopsFile(p) {
			add(p)
		}
		return nil
	})
	for _, e := range extra {
		if e != "" {
			add(e)
		}
	}
	sort.Strings(out)
	return out
}

// Stanza is one age recipient of a sops file with its encrypted data key.
type Stanza struct {
	Recipient string `yaml:"recipient" json:"recipient"`
	Enc       string `yaml:"enc" json:"enc"`
}

type sopsMeta struct {
	Age       []Stanza `yaml:"age"`
	KeyGroups []struct {
		Age []Stanza `yaml:"age"`
	} `yaml:"key_groups"`
	MAC     string `yaml:"mac"`
	Version string `yaml:"version"`
}

// readStanzas reads the age stanzas of a YAML or JSON sops file (YAML is a
// superset of JSON) or of a dotenv/ini one (sops flattens its metadata to
// sops_age__list_N__map_recipient keys there).
func readStanzas(path string) ([]Stanza, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Sops *sopsMeta `yaml:"sops"`
	}
	if yaml.Unmarshal(data, &doc) == nil && doc.Sops != nil && (doc.Sops.MAC != "" || doc.Sops.Version != "") {
		st := doc.Sops.Age
		for _, g := range doc.Sops.KeyGroups {
			st = append(st, g.Age...)
		}
		return st, nil
	}
	if st, ok := flatStanzas(data); ok {
		return st, nil
	}
	return nil, fmt.Errorf("%w: %s has no sops metadata: encrypt it with sops (sops --encrypt --in-place %s)", ErrNotSops, path, path)
}

var flatRE = regexp.MustCompile(`(?m)^\s*sops_age__list_(\d+)__map_(recipient|enc)\s*=\s*(.*)$`)

func flatStanzas(data []byte) ([]Stanza, bool) {
	if !bytes.Contains(data, []byte("sops_mac")) {
		return nil, false
	}
	byIdx := map[string]*Stanza{}
	var order []string
	for _, m := range flatRE.FindAllSubmatch(data, -1) {
		i := string(m[1])
		if byIdx[i] == nil {
			byIdx[i] = &Stanza{}
			order = append(order, i)
		}
		v := strings.ReplaceAll(string(m[3]), `\n`, "\n")
		if string(m[2]) == "recipient" {
			byIdx[i].Recipient = v
		} else {
			byIdx[i].Enc = v
		}
	}
	var out []Stanza
	for _, i := range order {
		out = append(out, *byIdx[i])
	}
	return out, true
}

// IsSopsFile reports whether path is a file sops has encrypted.
func IsSopsFile(path string) bool {
	_, err := readStanzas(path)
	return err == nil
}

// ProveDecrypt shows that key decrypts file as sops-nix will at boot: it
// decrypts the file's age stanza for the key's recipient and recovers the
// data key, without decrypting any value. The data key is dropped at once.
// A file that does not list the recipient wraps ErrNotReencrypted.
func ProveDecrypt(key *HostKey, file string) error {
	stanzas, err := readStanzas(file)
	if err != nil {
		return err
	}
	var st *Stanza
	for i := range stanzas {
		if strings.TrimSpace(stanzas[i].Recipient) == key.Recipient {
			st = &stanzas[i]
		}
	}
	if st == nil {
		return fmt.Errorf("%w: %s has no age stanza for %s", ErrNotReencrypted, file, key.Recipient)
	}
	id, err := ageIdentity(key.priv)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(st.Enc)), id)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDecrypt, file, err)
	}
	dataKey, err := io.ReadAll(io.LimitReader(r, 1024))
	n := len(dataKey)
	clear(dataKey)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDecrypt, file, err)
	}
	if n != 32 {
		return fmt.Errorf("%w: %s: the data key has %d bytes, not 32", ErrDecrypt, file, n)
	}
	return nil
}
