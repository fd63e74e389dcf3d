package main

import (
	"fmt"
	"io"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui/linear"
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
	cli.FlakeFlags(cmd, cfg)
	return cmd
}

func runKeys(cmd *cobra.Command, cfg steps.Config, fixMode bool, stdin io.Reader) error {
	out := cmd.OutOrStdout()
	if _, _, err := steps.SplitFlake(cfg.Flake); err != nil {
		return cli.UsageErr(err)
	}
	fix := func(path string, mode fs.FileMode) bool {
		return fixMode || linear.AskYes(out, stdin, fmt.Sprintf("%s has mode %04o; sshd ignores such a key. Fix it with chmod 600? [y/N] ", path, mode))
	}
	rep, err := engine.Keys(cmd.Context(), cfg, fix)
	linear.Keys(out, cfg, rep)
	switch {
	case err != nil && cmd.Context().Err() != nil:
		return err
	case err != nil:
		return cli.FailErr(err)
	case rep.Blocking():
		return cli.ErrSilent
	}
	return nil
}
