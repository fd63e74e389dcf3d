package sshexec

import "time"

// Defaults of Limits.
const (
	DefaultFactsTimeout = time.Minute
	DefaultProbeTimeout = 30 * time.Second
	DefaultIdleTimeout  = 2 * time.Minute
)

// Limits bound the remote calls of a Client, so that a command that never
// returns (a df on a dead NFS home, a sudo waiting for a dead LDAP server, a
// wedged login shell) ends with an error that names it instead of hanging:
// the keepalives keep such a connection alive, and Options.Timeout covers
// only the dial. A call that misses its bound returns an *Error of
// ErrRemoteTimeout.
type Limits struct {
	// Facts bounds the facts script as a whole; default DefaultFactsTimeout.
	Facts time.Duration
	// Probe bounds each short call: the sudo setup's probe, each of its
	// password attempts and its final sudo -n true, and the system state
	// read after a reboot; default DefaultProbeTimeout.
	Probe time.Duration
	// Idle bounds Run and Output: the longest a command may go without
	// writing a byte or reading one of its input (a stream keeps it
	// alive). Default DefaultIdleTimeout; negative: no bound.
	Idle time.Duration
}

func (l Limits) facts() time.Duration { return orDefault(l.Facts, DefaultFactsTimeout) }
func (l Limits) probe() time.Duration { return orDefault(l.Probe, DefaultProbeTimeout) }

func (l Limits) idle() time.Duration {
	if l.Idle < 0 {
		return 0
	}
	return orDefault(l.Idle, DefaultIdleTimeout)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// SetLimits changes the bounds of the client's later calls.
func (c *Client) SetLimits(l Limits) { c.limits = l }
