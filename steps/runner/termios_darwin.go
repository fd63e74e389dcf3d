package runner

import "golang.org/x/sys/unix"

// The ioctl requests that read and set a terminal's settings.
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)
