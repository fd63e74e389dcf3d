package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// HostKeyPath returns where the host key is in the extra-files tree and
// where it lands on the new system, following the flake's sops sshKeyPaths.
func HostKeyPath(cfg steps.Config, c *flake.Config) (local, target string) {
	var paths []string
	if c != nil && c.Sops != nil {
		paths = c.Sops.SSHKeyPaths
	}
	return secrets.KeyPath(cfg.ExtraFiles, paths)
}

// SopsFiles returns .sops.yaml's path (empty when the flake has none), its
// rules, and the secrets files to prove: those its rules cover and the
// flake's defaultSopsFile.
func SopsFiles(cfg steps.Config, flakeDir string, c *flake.Config) (string, *secrets.SopsConfig, []string, error) {
	var extra []string
	if c != nil && c.Sops != nil && c.Sops.DefaultSopsFile != nil {
		extra = append(extra, storeToLocal(*c.Sops.DefaultSopsFile, flakeDir))
	}
	confPath := filepath.Join(flakeDir, ".sops.yaml")
	if _, err := os.Stat(confPath); err != nil {
		return "", nil, extra, nil
	}
	sc, err := secrets.LoadSopsConfig(confPath)
	if err != nil {
		return confPath, nil, extra, err
	}
	return confPath, sc, sc.FindSecrets(flakeDir, cfg.ExtraFiles, extra...), nil
}

// SecretChecks runs local.hostkey, local.secrets_tracked,
// local.sops_recipient and local.sops_decrypt against the configuration c
// (nil when the flake could not be read). bigbang keys runs them after
// generating or fixing the key.
func SecretChecks(ctx context.Context, cfg steps.Config, flakeDir string, c *flake.Config) []steps.Check {
	return secretChecks(ctx, cfg, flakeDir, c, nil)
}

// gitAnswer is git's answer for one path, asked while nix evaluates.
type gitAnswer struct {
	path  string
	state secrets.GitState
	err   error
}

func askGit(ctx context.Context, path string) *gitAnswer {
	st, err := secrets.GitFileState(ctx, path)
	return &gitAnswer{path: path, state: st, err: err}
}

func secretChecks(ctx context.Context, cfg steps.Config, flakeDir string, c *flake.Config, pre *gitAnswer) []steps.Check {
	usesSops := c != nil && c.Sops != nil
	keyPath, target := HostKeyPath(cfg, c)
	var out []steps.Check

	key, kerr := secrets.Inspect(keyPath)
	out = append(out, hostKeyCheck(keyPath, target, key, kerr, usesSops))

	if pre == nil || pre.path != keyPath {
		pre = askGit(ctx, keyPath)
	}
	st, gerr := pre.state, pre.err
	switch {
	case errors.Is(gerr, secrets.ErrNotGit):
		out = append(out, ok(IDSecretsTrack, "the host key is not in a git repository"))
	case gerr != nil:
		out = append(out, warn(IDSecretsTrack, "git cannot say whether the host key is tracked: "+gerr.Error(), "run git status"))
	case st.Tracked:
		out = append(out, fail(IDSecretsTrack, "the private host key "+keyPath+" is tracked by git", secrets.UntrackFix(keyPath)))
	case !st.Ignored:
		out = append(out, warn(IDSecretsTrack, "the private host key "+keyPath+" is not ignored by git: one git add -A and it is committed",
			"add "+steps.ShellQuote(filepath.ToSlash(filepath.Dir(filepath.Clean(cfg.ExtraFiles))))+"/ or the key's path to .gitignore"))
	default:
		out = append(out, ok(IDSecretsTrack, "the private host key is ignored by git"))
	}

	if !usesSops {
		reason := "the configuration does not use sops-nix"
		if c == nil {
			reason = "the flake could not be read"
		}
		return append(out, skip(IDSopsRecipient, reason+", so no secrets are checked"), skip(IDSopsDecrypt, reason+", so no secrets are checked"))
	}
	if flakeDir == "" {
		return append(out, skip(IDSopsRecipient, "the flake is not a local folder"), skip(IDSopsDecrypt, "the flake is not a local folder"))
	}
	confPath, sc, files, serr := SopsFiles(cfg, flakeDir, c)
	if kerr != nil {
		why := "there is no usable host key to check the secrets with"
		return append(out, skip(IDSopsRecipient, why), skip(IDSopsDecrypt, why))
	}
	if serr != nil {
		out = append(out, fail(IDSopsRecipient, "cannot read "+confPath, serr.Error()))
	} else {
		out = append(out, recipientCheck(key, confPath, sc, files))
	}
	return append(out, decryptCheck(key, files, sc))
}

func hostKeyCheck(path, target string, k *secrets.HostKey, err error, usesSops bool) steps.Check {
	gen := "run bigbang keys to generate it (it prints the age recipient for .sops.yaml)"
	switch {
	case errors.Is(err, secrets.ErrMissing) && usesSops:
		return fail(IDHostKey, "no host key at "+path+": the new system would get a new one that cannot decrypt the sops secrets", gen)
	case errors.Is(err, secrets.ErrMissing):
		return warn(IDHostKey, "no host key at "+path+": the new system generates its own, and its fingerprint will be new to you", gen)
	case errors.Is(err, secrets.ErrEncrypted):
		return fail(IDHostKey, "the host key "+path+" is passphrase-protected: sshd and sops-nix cannot use it",
			"remove the passphrase: ssh-keygen -p -N '' -f "+steps.ShellQuote(path))
	case errors.Is(err, secrets.ErrKeyType):
		return fail(IDHostKey, err.Error()+": sops-nix derives the age key from an ed25519 host key",
			"move it away and run bigbang keys to generate an ed25519 key")
	case err != nil:
		return fail(IDHostKey, "the host key is not usable: "+err.Error(), "move it away and run bigbang keys to generate a new one")
	case !k.ModeOK():
		return fail(IDHostKey, fmt.Sprintf("the host key %s has mode %04o: sshd ignores a host key others can read", path, k.Mode.Perm()),
			"run "+k.ModeFix()+" (or bigbang keys --fix-mode)")
	case errors.Is(k.PubErr, secrets.ErrPubMismatch):
		return fail(IDHostKey, "the host key's .pub holds another key than "+path,
			"rewrite it: ssh-keygen -y -f "+steps.ShellQuote(path)+" > "+steps.ShellQuote(path+".pub"))
	case k.PubErr != nil:
		return warn(IDHostKey, "the host key has no .pub beside it",
			"write it: ssh-keygen -y -f "+steps.ShellQuote(path)+" > "+steps.ShellQuote(path+".pub"))
	}
	return ok(IDHostKey, fmt.Sprintf("host key for %s: %s, age recipient %s", target, k.Fingerprint, k.Recipient))
}

func recipientCheck(k *secrets.HostKey, confPath string, sc *secrets.SopsConfig, files []string) steps.Check {
	if sc == nil {
		return warn(IDSopsRecipient, "the flake has no .sops.yaml, so the rules for new secrets are not checked",
			fmt.Sprintf("add .sops.yaml with a creation rule whose age recipients include %s", k.Recipient))
	}
	if len(files) == 0 {
		return warn(IDSopsRecipient, "no secrets file is covered by the rules of "+confPath, "check path_regex in .sops.yaml")
	}
	var missing []string
	for _, f := range files {
		r, err := sc.RuleFor(f)
		if err != nil || !r.Has(k.Recipient) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fail(IDSopsRecipient, fmt.Sprintf("the host key is not a recipient in .sops.yaml for %s", strings.Join(missing, ", ")),
			fmt.Sprintf("add %s to the age recipients of the rule for those files in %s, then run sops updatekeys on each", k.Recipient, confPath))
	}
	return ok(IDSopsRecipient, fmt.Sprintf("the host key is a recipient for %d secrets file(s) in .sops.yaml", len(files)))
}

func decryptCheck(k *secrets.HostKey, files []string, sc *secrets.SopsConfig) steps.Check {
	if len(files) == 0 {
		return skip(IDSopsDecrypt, "no secrets file to decrypt")
	}
	var problems, fixes []string
	for _, f := range files {
		err := secrets.ProveDecrypt(k, f)
		switch {
		case err == nil:
		case errors.Is(err, secrets.ErrNotReencrypted):
			listed := false
			if sc != nil {
				if r, rerr := sc.RuleFor(f); rerr == nil {
					listed = r.Has(k.Recipient)
				}
			}
			if listed {
				problems = append(problems, f+" is listed for the host key in .sops.yaml but not encrypted to it (sops updatekeys was not run)")
				fixes = append(fixes, "sops updatekeys "+steps.ShellQuote(f))
			} else {
				problems = append(problems, f+" is not encrypted to the host key")
				fixes = append(fixes, "add "+k.Recipient+" to .sops.yaml, then sops updatekeys "+steps.ShellQuote(f))
			}
		case errors.Is(err, secrets.ErrNotSops):
			problems = append(problems, f+" is not a sops file")
			fixes = append(fixes, "encrypt it: sops --encrypt --in-place "+steps.ShellQuote(f))
		case errors.Is(err, os.ErrNotExist):
			problems = append(problems, f+" does not exist")
			fixes = append(fixes, "create it with sops, or fix sops.defaultSopsFile")
		default:
			problems = append(problems, err.Error())
			fixes = append(fixes, "re-encrypt "+steps.ShellQuote(f)+" to the host key with sops updatekeys")
		}
	}
	if len(problems) > 0 {
		return fail(IDSopsDecrypt, "the new system could not decrypt its secrets at boot: "+strings.Join(problems, "; "), strings.Join(fixes, "; "))
	}
	return ok(IDSopsDecrypt, fmt.Sprintf("the host key decrypts the data key of %d secrets file(s)", len(files)))
}
