//go:build !linux

package bench

import "os"

// IsTerminal reports whether f is a terminal (the progress bar is drawn
// only on one). Outside Linux it guesses from the file mode: a character
// device.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
