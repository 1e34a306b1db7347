package wal

import (
	"errors"
	"testing"
)

func TestSyncFlushesRelaxedModes(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			fs := newFaultFS()
			l := mustOpen(t, t.TempDir(), Options{FS: fs, Sync: mode, SyncInterval: 1 << 40})
			defer mustClose(t, l)
			appendN(t, l, 10)
			before := fs.syncs.Load()
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			synced := fs.syncs.Load() - before
			if mode == SyncAlways && synced != 0 {
				t.Fatalf("sync always: Sync issued %d extra fdatasyncs", synced)
			}
			if mode != SyncAlways && synced != 1 {
				t.Fatalf("%s: Sync issued %d fdatasyncs, want 1", mode, synced)
			}
			if err := l.Sync(); err != nil || fs.syncs.Load()-before != synced {
				t.Fatalf("a second Sync with nothing new should not fdatasync: %v", err)
			}
		})
	}
}

func TestSyncReportsFailure(t *testing.T) {
	fs := newFaultFS()
	l := mustOpen(t, t.TempDir(), Options{FS: fs, Sync: SyncNever})
	defer l.Close()
	appendN(t, l, 3)
	fs.failSync.Store(true)
	if err := l.Sync(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Sync with a failing fdatasync: %v", err)
	}
	if !errors.Is(l.Err(), ErrFailed) {
		t.Fatalf("Err after a failed sync: %v", l.Err())
	}
	if _, err := l.Append(1, []byte("x")); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed sync: %v", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrFailed) {
		t.Fatalf("second Sync: %v", err)
	}
}

func TestStartLSN(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{StartLSN: 500})
	lsn, err := l.Append(1, []byte("a"))
	if err != nil || lsn != 500 {
		t.Fatalf("first append in an empty dir with StartLSN 500: %d %v", lsn, err)
	}
	mustClose(t, l)
	// an existing log ignores StartLSN
	l = mustOpen(t, dir, Options{StartLSN: 9000})
	defer mustClose(t, l)
	if lsn, err := l.Append(1, []byte("b")); err != nil || lsn != 501 {
		t.Fatalf("append after reopen: %d %v", lsn, err)
	}
}
