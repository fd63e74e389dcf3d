// Package cli is the command line's contract with the shell: the exit
// codes, the errors that carry them, and how an error is printed.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"charm.land/fang/v2"
	"github.com/charmbracelet/x/term"
)

// Exit codes of the command-line contract.
const (
	OK          = 0
	Failed      = 1
	Usage       = 2
	Interrupted = 130
)

// ExitError carries the exit code a command wants alongside its error.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// UsageErr marks err as a usage error (exit code 2).
func UsageErr(err error) error { return &ExitError{Code: Usage, Err: err} }

// FailErr marks err as a failed or blocked run (exit code 1).
func FailErr(err error) error { return &ExitError{Code: Failed, Err: err} }

// ErrSilent ends a command with exit code 1 when the command has already
// told the operator why.
var ErrSilent = errors.New("failed")

// Code maps a command's error to the exit codes of the contract.
func Code(ctx context.Context, err error) int {
	if err == nil {
		return OK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return Interrupted
	}
	// Cobra reports unknown commands and wrong argument counts as plain
	// errors; they are usage errors.
	if isCobraUsage(err) {
		return Usage
	}
	return Failed
}

// isCobraUsage recognises the usage errors that cobra creates itself: it
// offers no sentinel errors for them, so their text is the only handle.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// ErrorHandler prints a command's error as fang does, but verbatim: paths,
// hosts and flags in it keep their case (fang's style capitalises the
// first word). ErrSilent prints nothing: the command said why already.
func ErrorHandler(w io.Writer, styles fang.Styles, err error) {
	if errors.Is(err, ErrSilent) {
		return
	}
	if f, ok := w.(term.File); ok && !term.IsTerminal(f.Fd()) {
		fmt.Fprintln(w, "Error: "+err.Error())
		return
	}
	fmt.Fprintln(w, styles.ErrorHeader.String())
	fmt.Fprintln(w, styles.ErrorText.UnsetTransform().Render(err.Error()))
	fmt.Fprintln(w)
	if isCobraUsage(err) {
		fmt.Fprintln(w, styles.ErrorText.UnsetTransform().Render("Try --help for usage."))
		fmt.Fprintln(w)
	}
}
