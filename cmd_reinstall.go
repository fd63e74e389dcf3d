package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/ui"
)

func newReinstallCmd(cfg *steps.Config) *cobra.Command {
	var o engine.ReinstallOptions
	var restore, src string
	var timeout, wait, stall time.Duration
	cmd := &cobra.Command{
		Use:   "reinstall",
		Short: "Guided reinstall after disko changes: drift, backup, install, restore before the first boot",
		Long: "reinstall carries a machine across a disk layout change. It compares the flake's disko\n" +
			"layout with the live disks (and stops when a switch would do), makes sure the machine's\n" +
			"host key is in the extra-files tree so the new system keeps its identity and its secrets,\n" +
			"stops the --service units and backs up --source (/persistent) into a verified local\n" +
			"archive, and after a typed confirmation naming the backup installs with nixos-anywhere\n" +
			"without its reboot, restores the archive into the installer's /mnt/persistent (numeric\n" +
			"owners, compared with the archive), then reboots and waits for the new system with the\n" +
			"pinned host key: its first boot already has its state. Units stopped for the backup start\n" +
			"again if the reinstall stops before the wipe.\n" +
			"The backup holds the machine's secrets: it is encrypted with age to --backup-recipient or the\n" +
			"flake's .sops.yaml recipients, and opened for the restore with --backup-identity (default\n" +
			"where sops looks); --plaintext-backup writes it in the clear.\n" +
			"--restore ARCHIVE restores an archive into the running system (after a restore that failed).",
		Example: "  bigbang reinstall --host 203.0.113.7 --user admin --service postgresql.service\n" +
			"  bigbang reinstall --host 203.0.113.7 --user admin --yes-wipe 203.0.113.7   # no questions\n" +
			"  bigbang reinstall --host 203.0.113.7 --restore ~/.local/state/bigbang/backups/203.0.113.7-….tar.zst",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := *cfg
			if err := cli.CheckArchiveFlags(cmd, o, restore != ""); err != nil {
				return cli.UsageErr(err)
			}
			if restore != "" {
				// The restore alone needs no flake and no extra files.
				ctx, cancel, e, err := readOnly(cmd, &c, needs{receipt: true})
				if err != nil {
					return err
				}
				defer cancel()
				if cmd.Flags().Changed("source") {
					o.Source = src
				}
				if c.YesWipe != "" {
					if err := engine.CheckYesWipe(c); err != nil {
						return cli.UsageErr(err)
					}
				}
				if _, err := e.RestoreArchive(ctx, c, restore, o, dialPolicy(cmd, &c, timeout, false), front(cmd, c, interactive(&c))); err != nil {
					return cli.FailErr(err)
				}
				return nil
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			o.Source = src
			if wantsWizard(cmd, c) && !ui.Accessible() {
				// On a terminal: the install's wizard with the reinstall's steps.
				return runWizard(ctx, cmd, &c, wait, stall, &o)
			}
			if err := c.Validate(); err != nil {
				return cli.UsageErr(err)
			}
			ask := interactive(&c)
			if !ask {
				if err := engine.CheckYesWipe(c); err != nil {
					return cli.UsageErr(err)
				}
			}
			e, _ := newEngine(ctx, cmd, &c, needs{receipt: true, flake: true})
			e.RebootTimeout, e.Stall = wait, stall
			f := front(cmd, c, ask)
			out, err := e.RunReinstall(ctx, engine.Script{Config: c, Dial: dialPolicy(cmd, &c, timeout, false), Reinstall: &o,
				Resume: engine.ResumeStyle{Script: true, RebootTimeout: wait}}, f)
			switch {
			case errors.Is(err, engine.ErrNothingToReinstall):
				fmt.Fprintln(cmd.OutOrStdout(), "Nothing to reinstall. (--force reinstalls anyway.)")
				return nil
			case err != nil && out.Install.Outcome == "":
				return engineErr(ctx, "reinstall", err)
			}
			f.EndReinstall(c, out)
			if out.Install.Outcome != steps.OutcomeSuccess {
				return resultErr(out.Install)
			}
			if err != nil {
				return cli.FailErr(err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&src, "source", reinstall.DefaultSource, "directory on the target to back up and restore")
	fl.StringVar(&o.BackupDir, "backup-dir", "", "local folder for the backup (default $XDG_STATE_HOME/bigbang/backups)")
	fl.StringArrayVar(&o.Services, "service", nil, "systemd unit that writes into the source: stopped before the backup (started again if the reinstall stops before the wipe) and during --restore (repeatable)")
	fl.BoolVar(&o.Force, "force", false, "reinstall even when the disk layout did not change")
	fl.StringVar(&restore, "restore", "", "only restore this archive onto the target (resume after a failed restore)")
	cli.ArchiveFlags(cmd, &o)
	addConnectTimeout(cmd, &timeout)
	cli.RunFlags(cmd, cfg, &wait, &stall)
	cli.TargetFlags(cmd, cfg)
	cli.InstallConfigFlags(cmd, cfg)
	return cmd
}
