package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"charm.land/fang/v2"
	"charm.land/lipgloss/v2"
)

// TestErrorHandlerVerbatim: paths and flags in an error keep their case;
// fang's own style would print /Tmp/… and --Reboot-Timeout.
func TestErrorHandlerVerbatim(t *testing.T) {
	msg := "--reboot-timeout -1s: give a time to wait; /tmp/adv/no-such-name is missing"
	var b bytes.Buffer
	// fang's error style capitalises: a style that does is what the
	// handler must undo.
	styles := fang.Styles{ErrorText: lipgloss.NewStyle().Transform(strings.ToUpper)}
	ErrorHandler(&b, styles, UsageErr(errors.New(msg)))
	if !strings.Contains(b.String(), msg) {
		t.Errorf("the error was not printed verbatim:\n%s", b.String())
	}
	b.Reset()
	ErrorHandler(&b, styles, fmt.Errorf("install: %w", ErrSilent))
	if b.Len() != 0 {
		t.Errorf("a silent failure printed %q", b.String())
	}
}

// TestCode maps errors to the exit codes of the contract.
func TestCode(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want int
	}{
		{context.Background(), nil, OK},
		{context.Background(), UsageErr(errors.New("x")), Usage},
		{context.Background(), FailErr(errors.New("x")), Failed},
		{context.Background(), errors.New(`unknown flag: --nope`), Usage},
		{context.Background(), errors.New("boom"), Failed},
		{cancelled, errors.New("boom"), Interrupted},
	} {
		if got := Code(tc.ctx, tc.err); got != tc.want {
			t.Errorf("Code(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
