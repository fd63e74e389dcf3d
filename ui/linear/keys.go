package linear

import (
	"fmt"
	"io"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// Keys prints what `bigbang keys` found and did.
func Keys(w io.Writer, cfg steps.Config, rep engine.KeysReport) {
	g := func(s steps.Status) string { return textout.StatusGlyph(s, "–") }
	if rep.FlakeErr != nil {
		fmt.Fprintf(w, "%s cannot read %s, so the default key path is used and the sops checks are skipped:\n  %s\n",
			g(steps.StatusWarn), cfg.Flake, strings.ReplaceAll(rep.FlakeErr.Error(), "\n", "\n  "))
	}
	if rep.Generated {
		fmt.Fprintf(w, "%s generated a new host key %s (+ .pub) for %s on the new system\n", g(steps.StatusOK), rep.Path, rep.Target)
	}
	if rep.ModeFixed {
		fmt.Fprintf(w, "%s %s is now mode 0600\n", g(steps.StatusOK), rep.Path)
	}
	if k := rep.Key; k != nil {
		fmt.Fprintf(w, "\nhost key     %s\nfingerprint  %s\nage          %s\n\n", rep.Path, k.Fingerprint, k.Recipient)
	}
	textout.Checks(w, rep.Checks)
}
