package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/secrets"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

func newKeysCmd(cfg *steps.Config) *cobra.Command {
	var fixMode bool
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Generate or check the host key in the extra-files tree, and prove it decrypts the sops secrets",
		Long: "keys looks at the SSH host key that --extra-files ships to the new system (where the flake's\n" +
			"sops.age.sshKeyPaths says, else persistent/etc/ssh/ssh_host_ed25519_key): it generates it when\n" +
			"missing, checks it when present, prints its fingerprint and age recipient, and proves that it\n" +
			"decrypts every sops file the flake uses. Exit status 1 when a problem remains.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeys(cmd, *cfg, fixMode, cmd.InOrStdin())
		},
	}
	cmd.Flags().BoolVar(&fixMode, "fix-mode", false, "make the private host key mode 0600 without asking")
	return cmd
}

func runKeys(cmd *cobra.Command, cfg steps.Config, fixMode bool, stdin io.Reader) error {
	out := cmd.OutOrStdout()
	flakePath, name, err := steps.SplitFlake(cfg.Flake)
	if err != nil {
		return usageErr(err)
	}
	dir := flake.LocalDir(flakePath)
	info, ferr := flake.Evaluate(cmd.Context(), cfg.Flake)
	var conf *flake.Config
	if ferr != nil {
		if err := cmd.Context().Err(); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s cannot read %s, so the default key path is used and the sops checks are skipped:\n  %s\n",
			textout.StatusGlyph(steps.StatusWarn, "–"), cfg.Flake, strings.ReplaceAll(ferr.Error(), "\n", "\n  "))
	} else {
		conf = &info.Config
	}
	keyPath, target := local.HostKeyPath(cfg, conf)
	key, kerr := secrets.Inspect(keyPath)
	if errors.Is(kerr, secrets.ErrMissing) {
		key, kerr = secrets.Generate(keyPath, "root@"+name)
		if kerr != nil {
			return failErr(fmt.Errorf("keys: %w: check that %s is writable", kerr, cfg.ExtraFiles))
		}
		fmt.Fprintf(out, "%s generated a new host key %s (+ .pub) for %s on the new system\n", textout.StatusGlyph(steps.StatusOK, "–"), keyPath, target)
	}
	if kerr == nil && !key.ModeOK() {
		if fixMode || keysAskYes(out, stdin, fmt.Sprintf("%s has mode %04o; sshd ignores such a key. Fix it with chmod 600? [y/N] ", keyPath, key.Mode.Perm())) {
			if err := secrets.FixMode(keyPath); err != nil {
				return failErr(fmt.Errorf("keys: %w", err))
			}
			fmt.Fprintf(out, "%s %s is now mode 0600\n", textout.StatusGlyph(steps.StatusOK, "–"), keyPath)
			key, kerr = secrets.Inspect(keyPath)
		}
	}
	if kerr == nil {
		fmt.Fprintf(out, "\nhost key     %s\nfingerprint  %s\nage          %s\n\n", keyPath, key.Fingerprint, key.Recipient)
	}
	checks := local.SecretChecks(cmd.Context(), cfg, dir, conf)
	textout.Checks(out, checks)
	if ferr != nil || steps.CountBlocking(checks) > 0 {
		return errSilentFailure
	}
	return nil
}

// keysAskYes asks a yes/no question when stdin is a terminal; otherwise the
// answer is no (a script passes --fix-mode).
func keysAskYes(out io.Writer, stdin io.Reader, question string) bool {
	if f, ok := stdin.(*os.File); ok {
		st, err := f.Stat()
		if err != nil || st.Mode()&os.ModeCharDevice == 0 {
			return false
		}
	}
	fmt.Fprint(out, question)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	return textout.IsYes(line)
}
