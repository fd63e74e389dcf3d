package textout

import "github.com/bigbang-nix/bigbang/steps"

// StatusNext is the result's word on `bigbang status` for host: what it
// checks, the GitOps hand-off among it. The wizard's result screen and the
// plain output both say it.
func StatusNext(host string) string {
	return "bigbang status --host " + steps.ShellQuote(host) + " checks it at any time, the hand-off too: " +
		"the pushed revision deployed, the update timer, the deploy units, the open ports."
}
