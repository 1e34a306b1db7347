//go:build linux

package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDiskFullTmpfs fills a real (tmpfs) file system; it needs root and
// skips otherwise.
func TestDiskFullTmpfs(t *testing.T) {
	mnt := mountTmpfs(t, 8<<20)
	o := Options{Dir: filepath.Join(mnt, "data"), Clock: fixedClock, ReserveBytes: 1 << 20, SegmentSize: 1 << 20,
		SnapshotEvery: 1 << 40, NoSnapshotOnClose: true}
	r := open(t, o)
	if fi, err := os.Stat(filepath.Join(o.Dir, "wal", "reserve")); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("reserve file: %v", err)
	}
	filler := filepath.Join(mnt, "filler")
	acked, canceled, leased, added, ids := diskFullScenario(t, r,
		func() { fillDisk(t, filler) },
		func() {
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
		})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = open(t, o)
	defer r.Close()
	checkAfterReopen(t, r, acked, canceled, leased, added, ids)
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends. It skips the test if it cannot mount.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v; detaching it", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// fillDisk writes path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
}
