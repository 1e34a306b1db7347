package vfstest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, fsys vfs.FS, name string) vfs.File {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	must(t, err)
	return f
}

func write(t *testing.T, f vfs.File, p []byte) {
	t.Helper()
	n, err := f.Write(p)
	must(t, err)
	if n != len(p) {
		t.Fatalf("wrote %d of %d bytes", n, len(p))
	}
}

func readAll(t *testing.T, fsys vfs.FS, name string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	must(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	must(t, err)
	return b
}

func exists(t *testing.T, fsys vfs.FS, name string) bool {
	t.Helper()
	_, err := fsys.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	must(t, err)
	return true
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251) + 1 // never zero
	}
	return b
}

// TestBehaviourLikeOS runs the same script against the OS and the model and
// compares what a process sees (no crash involved).
func TestBehaviourLikeOS(t *testing.T) {
	script := func(t *testing.T, fsys vfs.FS, dir string) []string {
		var log []string
		note := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
		kind := func(err error) string {
			switch {
			case err == nil:
				return "ok"
			case errors.Is(err, fs.ErrNotExist):
				return "notexist"
			case errors.Is(err, fs.ErrExist):
				return "exist"
			case errors.Is(err, syscall.ENOTEMPTY):
				return "notempty"
			case errors.Is(err, os.ErrClosed):
				return "closed"
			case errors.Is(err, syscall.EBADF):
				return "badf"
			case errors.Is(err, io.EOF):
				return "eof"
			}
			return "other: " + err.Error()
		}
		d := filepath.Join(dir, "a", "b")
		note("mkdir %s", kind(fsys.MkdirAll(d, 0o700)))
		note("mkdir again %s", kind(fsys.MkdirAll(d, 0o700)))
		_, err := fsys.OpenFile(filepath.Join(d, "x"), os.O_RDONLY, 0)
		note("open missing %s", kind(err))
		f, err := fsys.OpenFile(filepath.Join(d, "x"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		note("create %s", kind(err))
		_, err = fsys.OpenFile(filepath.Join(d, "x"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		note("create again %s", kind(err))
		n, err := f.Write([]byte("hello world"))
		note("write %d %s", n, kind(err))
		_, err = f.Read(make([]byte, 1))
		note("read wronly %s", kind(err))
		off, err := f.Seek(20, io.SeekStart)
		note("seek %d %s", off, kind(err))
		n, err = f.Write([]byte("!"))
		note("write past end %d %s", n, kind(err))
		size, err := f.Size()
		note("size %d %s", size, kind(err))
		note("truncate %s", kind(f.Truncate(5)))
		note("sync %s", kind(f.Sync()))
		note("close %s", kind(f.Close()))
		note("close again %s", kind(f.Close()))
		_, err = f.Write([]byte("x"))
		note("write closed %s", kind(err))
		f, err = fsys.OpenFile(filepath.Join(d, "x"), os.O_RDWR|os.O_APPEND, 0)
		note("open append %s", kind(err))
		n, err = f.Write([]byte("++"))
		note("append %d %s", n, kind(err))
		buf := make([]byte, 10)
		n, err = f.ReadAt(buf, 2)
		note("readat %d %q %s", n, buf[:n], kind(err))
		n, err = f.ReadAt(buf[:3], 0)
		note("readat full %d %q %s", n, buf[:n], kind(err))
		note("close %s", kind(f.Close()))
		f, err = fsys.OpenFile(filepath.Join(d, "y"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		note("create y %s", kind(err))
		f.Write([]byte("yy"))
		f.Close()
		names, err := fsys.ReadDir(d)
		note("readdir %v %s", names, kind(err))
		note("rename %s", kind(fsys.Rename(filepath.Join(d, "y"), filepath.Join(d, "x"))))
		names, err = fsys.ReadDir(d)
		note("readdir %v %s", names, kind(err))
		note("content %q", readAll(t, fsys, filepath.Join(d, "x")))
		st, err := fsys.Stat(filepath.Join(d, "x"))
		note("stat %s %d %v %s", st.Name(), st.Size(), st.IsDir(), kind(err))
		st, err = fsys.Stat(d)
		note("stat dir %s %v %s", st.Name(), st.IsDir(), kind(err))
		note("rename missing %s", kind(fsys.Rename(filepath.Join(d, "nope"), filepath.Join(d, "z"))))
		note("remove nonempty dir %s", kind(fsys.Remove(d)))
		note("remove %s", kind(fsys.Remove(filepath.Join(d, "x"))))
		note("remove again %s", kind(fsys.Remove(filepath.Join(d, "x"))))
		note("remove dir %s", kind(fsys.Remove(d)))
		note("syncdir %s", kind(fsys.SyncDir(filepath.Join(dir, "a"))))
		_, err = fsys.Stat(d)
		note("stat removed %s", kind(err))
		f, err = fsys.OpenFile(filepath.Join(d, "x"), os.O_CREATE|os.O_WRONLY, 0o600)
		note("create in missing dir %s", kind(err))
		return log
	}
	osDir := t.TempDir()
	want := script(t, vfs.OS, osDir)
	got := script(t, New(1), "/data")
	if !slices.Equal(got, want) {
		t.Errorf("model differs from the OS:\n got %q\nwant %q", got, want)
	}
}

// TestSyncedSurvives: everything synced (file and directory) survives every
// power cut, whatever the seed.
func TestSyncedSurvives(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		m := New(seed)
		must(t, m.MkdirAll("/d", 0o700))
		m.SyncAll()
		f := create(t, m, "/d/f")
		write(t, f, pattern(3000, 1))
		must(t, f.Sync())
		must(t, m.SyncDir("/d"))
		write(t, f, pattern(700, 2)) // unsynced tail
		m.PowerCut()
		m.Restart()
		got := readAll(t, m, "/d/f")
		if len(got) < 3000 || !bytes.Equal(got[:3000], pattern(3000, 1)) {
			t.Fatalf("seed %d: synced content lost: %d bytes", seed, len(got))
		}
	}
}

// TestTornTailShapes: an unsynced append survives as a prefix ending at a
// sector boundary of the file offset (or whole, or not at all), its last
// sector's new bytes possibly zeroed, and bytes durable before are never
// touched. Every shape shows up over enough seeds.
func TestTornTailShapes(t *testing.T) {
	const base, n = 1000, 3000 // the write covers file offsets [1000, 4000)
	old := pattern(base, 7)
	data := pattern(n, 9)
	shapes := map[string]int{}
	for seed := uint64(0); seed < 2000; seed++ {
		m := New(seed)
		f := create(t, m, "/f")
		write(t, f, old)
		must(t, f.Sync())
		must(t, m.SyncDir("/"))
		write(t, f, data)
		m.PowerCut()
		m.Restart()
		got := readAll(t, m, "/f")
		if !bytes.Equal(got[:base], old) {
			t.Fatalf("seed %d: durable bytes changed", seed)
		}
		end := len(got)
		switch {
		case end == base:
			shapes["none"]++
			continue
		case end == base+n && bytes.Equal(got[base:], data):
			shapes["whole"]++
			continue
		case end%SectorSize != 0 || end > base+n:
			t.Fatalf("seed %d: file ends at %d, not at a sector boundary inside the write", seed, end)
		}
		tail := got[base:]
		if bytes.Equal(tail, data[:len(tail)]) {
			shapes["torn"]++
			continue
		}
		zs := max(end-SectorSize, base)
		if !bytes.Equal(tail[:zs-base], data[:zs-base]) || !allZero(got[zs:]) {
			t.Fatalf("seed %d: torn tail of %d bytes is neither a prefix nor a prefix with a zeroed last sector", seed, len(tail))
		}
		shapes["torn+zeros"]++
	}
	for _, s := range []string{"none", "whole", "torn", "torn+zeros"} {
		if shapes[s] == 0 {
			t.Errorf("shape %q never seen: %v", s, shapes)
		}
	}
	t.Logf("shapes over 2000 seeds: %v", shapes)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// TestWritesSurviveInOrder: several unsynced operations survive as a prefix:
// a later one never without an earlier one.
func TestWritesSurviveInOrder(t *testing.T) {
	for seed := uint64(0); seed < 500; seed++ {
		m := New(seed)
		f := create(t, m, "/f")
		must(t, m.SyncDir("/"))
		for i := range 4 {
			write(t, f, bytes.Repeat([]byte{byte('a' + i)}, SectorSize))
		}
		must(t, f.Truncate(3*SectorSize)) // queued after the writes
		m.PowerCut()
		m.Restart()
		got := readAll(t, m, "/f")
		for i := 0; i*SectorSize < len(got); i++ {
			sec := got[i*SectorSize : min(len(got), (i+1)*SectorSize)]
			if !allZero(sec) && !bytes.Equal(sec, bytes.Repeat([]byte{byte('a' + i)}, len(sec))) {
				t.Fatalf("seed %d: sector %d holds %q...", seed, i, sec[:4])
			}
			if allZero(sec) && (i+1)*SectorSize < len(got) {
				t.Fatalf("seed %d: zeroed sector %d is not the last", seed, i)
			}
		}
		if len(got)%SectorSize != 0 || len(got) > 4*SectorSize {
			t.Fatalf("seed %d: size %d", seed, len(got))
		}
	}
}

// TestDirectoryDurability: creates, removes and renames not followed by
// SyncDir may be lost (a rename never halfway); after SyncDir they are
// durable.
func TestDirectoryDurability(t *testing.T) {
	seen := map[string]bool{}
	for seed := uint64(0); seed < 300; seed++ {
		m := New(seed)
		must(t, m.MkdirAll("/d", 0o700))
		for _, name := range []string{"/d/old", "/d/gone"} {
			f := create(t, m, name)
			write(t, f, []byte(name))
			must(t, f.Sync())
			f.Close()
		}
		m.SyncAll()

		f := create(t, m, "/d/new") // synced data, unsynced entry
		write(t, f, []byte("new"))
		must(t, f.Sync())
		must(t, m.Remove("/d/gone"))
		must(t, m.Rename("/d/old", "/d/renamed"))
		m.PowerCut()
		m.Restart()

		newOK, goneBack := exists(t, m, "/d/new"), exists(t, m, "/d/gone")
		oldOK, renamedOK := exists(t, m, "/d/old"), exists(t, m, "/d/renamed")
		if oldOK == renamedOK {
			t.Fatalf("seed %d: rename half done: old %v renamed %v", seed, oldOK, renamedOK)
		}
		if newOK && string(readAll(t, m, "/d/new")) != "new" {
			t.Fatalf("seed %d: new file's synced content lost", seed)
		}
		// Operations survive in order: create, remove, rename.
		if (goneBack && renamedOK) || (!newOK && (!goneBack || renamedOK)) {
			t.Fatalf("seed %d: out of order: new %v gone-back %v renamed %v", seed, newOK, goneBack, renamedOK)
		}
		seen[fmt.Sprint(newOK, goneBack, renamedOK)] = true

		// Now made durable: survives every cut.
		f = create(t, m, "/d/later")
		must(t, f.Sync())
		if oldOK {
			must(t, m.Remove("/d/old"))
		} else {
			must(t, m.Remove("/d/renamed"))
		}
		must(t, m.SyncDir("/d"))
		m.PowerCut()
		m.Restart()
		if !exists(t, m, "/d/later") || exists(t, m, "/d/renamed") || exists(t, m, "/d/old") {
			t.Fatalf("seed %d: synced directory changes lost", seed)
		}
	}
	if len(seen) < 4 {
		t.Errorf("only %d outcomes seen: %v", len(seen), seen)
	}
}

// TestUnsyncedMkdirMayVanish: a directory whose creation was not synced in
// its parent may vanish with everything in it, even synced files.
func TestUnsyncedMkdirMayVanish(t *testing.T) {
	vanished := false
	for seed := uint64(0); seed < 50 && !vanished; seed++ {
		m := New(seed)
		must(t, m.MkdirAll("/a/b", 0o700))
		f := create(t, m, "/a/b/f")
		must(t, f.Sync())
		must(t, m.SyncDir("/a/b"))
		m.PowerCut()
		m.Restart()
		vanished = !exists(t, m, "/a/b/f")
	}
	if !vanished {
		t.Fatal("an unsynced mkdir never vanished")
	}
	m := New(1)
	must(t, m.MkdirAll("/a/b", 0o700))
	must(t, m.SyncDir("/"))
	must(t, m.SyncDir("/a"))
	m.PowerCut()
	m.Restart()
	if !exists(t, m, "/a/b") {
		t.Fatal("synced mkdir lost")
	}
}

func TestCrashTakesFSDown(t *testing.T) {
	m := New(1)
	f := create(t, m, "/f")
	write(t, f, []byte("abc"))
	c := m.Crashed()
	m.Kill()
	select {
	case <-c:
	default:
		t.Fatal("Crashed channel not closed by Kill")
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, ErrCrashed) {
		t.Fatalf("write after kill: %v", err)
	}
	if _, err := m.OpenFile("/f", os.O_RDONLY, 0); !errors.Is(err, ErrCrashed) {
		t.Fatalf("open while down: %v", err)
	}
	for _, err := range []error{m.SyncDir("/"), m.Remove("/f"), m.Rename("/f", "/g"), m.MkdirAll("/x", 0o700)} {
		if !errors.Is(err, ErrCrashed) {
			t.Fatalf("op while down: %v", err)
		}
	}
	if !m.Down() {
		t.Fatal("not down")
	}
	m.Restart()
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, ErrCrashed) {
		t.Fatalf("old file after restart: %v", err)
	}
	must(t, f.Close())
	// Kill keeps the page cache: the unsynced data and entry are still there,
	// and still at risk.
	if got := readAll(t, m, "/f"); string(got) != "abc" {
		t.Fatalf("after kill: %q", got)
	}
	// A power cut after a kill applies to what the kill left.
	lost := false
	for seed := uint64(0); seed < 50 && !lost; seed++ {
		m := New(seed)
		f := create(t, m, "/f")
		write(t, f, []byte("abc"))
		m.Kill()
		m.PowerCut()
		m.Restart()
		lost = !exists(t, m, "/f") || len(readAll(t, m, "/f")) < 3
	}
	if !lost {
		t.Fatal("PowerCut after Kill never lost unsynced data")
	}
}

// TestPowerCutAfter: the n-th mutating operation does not happen and fails.
func TestPowerCutAfter(t *testing.T) {
	m := New(3)
	f := create(t, m, "/f") // op 1
	must(t, m.SyncDir("/")) // op 2
	m.PowerCutAfter(4)
	write(t, f, []byte("a")) // 3
	must(t, f.Sync())        // 4
	if ops := m.Ops(); ops != 4 {
		t.Fatalf("ops %d", ops)
	}
	if _, err := f.Write([]byte("b")); err != nil { // 5
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, ErrCrashed) { // 6: cut
		t.Fatalf("sync at the cut: %v", err)
	}
	if m.Cuts() != 1 || !m.Down() {
		t.Fatal("no cut")
	}
	m.Restart()
	if got := string(readAll(t, m, "/f")); got != "a" && got != "ab" {
		t.Fatalf("content %q", got)
	}
}

func TestInjectedFaults(t *testing.T) {
	t.Run("write", func(t *testing.T) {
		m := New(1)
		f := create(t, m, "/f")
		m.FailAfter(OpWrite, 2, syscall.EIO)
		write(t, f, []byte("one"))
		if n, err := f.Write([]byte("two")); n != 0 || !errors.Is(err, syscall.EIO) {
			t.Fatalf("second write: %d %v", n, err)
		}
		write(t, f, []byte("three")) // spent
		if got := string(readAll(t, m, "/f")); got != "onethree" {
			t.Fatalf("content %q", got)
		}
		if m.FaultsFired() != 1 {
			t.Fatalf("fired %d", m.FaultsFired())
		}
	})
	t.Run("partial write", func(t *testing.T) {
		m := New(1)
		f := create(t, m, "/f")
		m.Inject(Fault{Op: OpWrite, Partial: true})
		n, err := f.Write([]byte("abcdef"))
		if n != 3 || !errors.Is(err, ErrInjected) {
			t.Fatalf("%d %v", n, err)
		}
		if got := string(readAll(t, m, "/f")); got != "abc" {
			t.Fatalf("content %q", got)
		}
	})
	t.Run("sticky, matched", func(t *testing.T) {
		m := New(1)
		a, b := create(t, m, "/a.wal"), create(t, m, "/b.snap")
		m.Inject(Fault{Op: OpSync | OpWrite, Sticky: true, Match: func(p string) bool { return filepath.Ext(p) == ".wal" }})
		for range 3 {
			if _, err := a.Write([]byte("x")); err == nil {
				t.Fatal("sticky fault did not fire")
			}
			if err := a.Sync(); err == nil {
				t.Fatal("sticky fault did not fire on sync")
			}
			write(t, b, []byte("y"))
			must(t, b.Sync())
		}
		m.ClearFaults()
		write(t, a, []byte("x"))
	})
	t.Run("create and rename", func(t *testing.T) {
		m := New(1)
		m.FailAfter(OpCreate, 1, nil)
		if _, err := m.OpenFile("/f", os.O_CREATE|os.O_WRONLY, 0o600); !errors.Is(err, ErrInjected) {
			t.Fatalf("create: %v", err)
		}
		if exists(t, m, "/f") {
			t.Fatal("failed create left a file")
		}
		create(t, m, "/f").Close()
		m.FailAfter(OpRename, 1, syscall.EIO)
		if err := m.Rename("/f", "/g"); !errors.Is(err, syscall.EIO) {
			t.Fatalf("rename: %v", err)
		}
		if !exists(t, m, "/f") || exists(t, m, "/g") {
			t.Fatal("failed rename changed names")
		}
		if err := m.MkdirAll("/d", 0o700); err != nil {
			t.Fatal(err)
		}
		if err := m.Rename("/f", "/d/f"); !errors.Is(err, syscall.EXDEV) {
			t.Fatalf("cross-directory rename: %v", err)
		}
	})
	t.Run("failed sync keeps or loses", func(t *testing.T) {
		lostSeen, keptSeen := false, false
		for seed := uint64(0); seed < 200; seed++ {
			for _, lose := range []bool{false, true} {
				m := New(seed)
				f := create(t, m, "/f")
				must(t, f.Sync())
				must(t, m.SyncDir("/"))
				data := pattern(2000, 3)
				write(t, f, data)
				m.Inject(Fault{Op: OpSync, Lose: lose})
				if err := f.Sync(); !errors.Is(err, ErrInjected) {
					t.Fatalf("sync: %v", err)
				}
				// Reads still see everything.
				if got := readAll(t, m, "/f"); !bytes.Equal(got, data) {
					t.Fatal("failed sync changed what reads see")
				}
				must(t, f.Sync()) // a retry "succeeds"
				m.PowerCut()
				m.Restart()
				got := readAll(t, m, "/f")
				if !lose && !bytes.Equal(got, data) {
					t.Fatalf("seed %d: without Lose, the retried sync should persist everything; got %d bytes", seed, len(got))
				}
				if lose && !bytes.Equal(got, data) {
					lostSeen = true
				}
				if lose && bytes.Equal(got, data) {
					keptSeen = true
				}
			}
		}
		if !lostSeen || !keptSeen {
			t.Fatalf("with Lose: lost seen %v, kept seen %v", lostSeen, keptSeen)
		}
	})
}

func TestENOSPC(t *testing.T) {
	m := New(1)
	f := create(t, m, "/f")
	write(t, f, make([]byte, 100))
	m.SetCapacity(150)
	n, err := f.Write(make([]byte, 80))
	if n != 50 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write over capacity: %d %v", n, err)
	}
	if _, err := f.Write([]byte{1}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write when full: %v", err)
	}
	if err := f.Truncate(200); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("truncate up when full: %v", err)
	}
	// Overwriting in place needs no space.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	write(t, f, make([]byte, 150))
	g := create(t, m, "/g")
	if _, err := g.Write([]byte{1}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second file: %v", err)
	}
	must(t, m.Remove("/f")) // frees its space
	write(t, g, make([]byte, 150))
	if m.Used() != 150 {
		t.Fatalf("used %d", m.Used())
	}
	m.SetCapacity(Unlimited)
	write(t, g, make([]byte, 1<<20))

	// After a cut, the space used is what the disk kept.
	must(t, g.Sync())
	must(t, m.SyncDir("/"))
	write(t, g, make([]byte, 5000)) // unsynced: may be lost
	m.PowerCut()
	m.Restart()
	if got, want := m.Used(), int64(len(readAll(t, m, "/g"))); got != want {
		t.Fatalf("used %d after the cut, the file holds %d", got, want)
	}
}

// TestDeterministic: the same seed and the same calls give the same state
// after a cut.
func TestDeterministic(t *testing.T) {
	run := func(seed uint64) string {
		m := New(seed)
		must(t, m.MkdirAll("/d/e", 0o700))
		for i := range 8 {
			f := create(t, m, fmt.Sprintf("/d/e/f%d", i))
			write(t, f, pattern(700*i+1, byte(i)))
			if i%2 == 0 {
				must(t, f.Sync())
			}
			if i%3 == 0 {
				must(t, m.SyncDir("/d/e"))
			}
		}
		m.PowerCut()
		m.Restart()
		var out bytes.Buffer
		var walk func(dir string)
		walk = func(dir string) {
			names, err := m.ReadDir(dir)
			if err != nil {
				fmt.Fprintf(&out, "%s: %v\n", dir, err)
				return
			}
			for _, n := range names {
				p := filepath.Join(dir, n)
				if st, _ := m.Stat(p); st.IsDir() {
					walk(p)
					continue
				}
				b := readAll(t, m, p)
				fmt.Fprintf(&out, "%s %d %x\n", p, len(b), b[max(len(b)-8, 0):])
			}
		}
		walk("/")
		return out.String()
	}
	differ := false
	for seed := uint64(0); seed < 20; seed++ {
		a, b := run(seed), run(seed)
		if a != b {
			t.Fatalf("seed %d: two runs differ:\n%s\n%s", seed, a, b)
		}
		differ = differ || a != run(seed+100)
	}
	if !differ {
		t.Fatal("the seed makes no difference")
	}
}

// TestConcurrentUseAndCut: writers, syncers and a power cut at once, for
// the race detector; every acknowledged (synced) write survives.
func TestConcurrentUseAndCut(t *testing.T) {
	m := New(9)
	must(t, m.MkdirAll("/d", 0o700))
	m.SyncAll()
	const writers = 4
	synced := make([]int, writers) // bytes known durable per file
	var wg sync.WaitGroup
	for w := range writers {
		name := fmt.Sprintf("/d/f%d", w)
		f := create(t, m, name)
		must(t, m.SyncDir("/d"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			total := 0
			for i := 0; ; i++ {
				n, err := f.Write(pattern(300+i, byte(w)))
				total += n
				if err == nil {
					err = f.Sync()
				}
				if err != nil {
					if !errors.Is(err, ErrCrashed) {
						t.Errorf("writer %d: %v", w, err)
					}
					return
				}
				synced[w] = total
			}
		}()
	}
	m.PowerCutAfter(200)
	<-m.Crashed()
	wg.Wait()
	m.Restart()
	for w := range writers {
		if got := len(readAll(t, m, fmt.Sprintf("/d/f%d", w))); got < synced[w] {
			t.Errorf("file %d: %d bytes, %d were synced", w, got, synced[w])
		}
	}
}

func TestFreeSpaceAndAllocate(t *testing.T) {
	m := New(1)
	if free, err := m.FreeSpace("/"); err != nil || free != 1<<40 {
		t.Fatalf("unlimited: %d %v", free, err)
	}
	f := create(t, m, "/f")
	write(t, f, make([]byte, 100))
	m.SetCapacity(1000)
	if free, _ := m.FreeSpace("/"); free != 900 {
		t.Fatalf("free %d", free)
	}
	if err := f.(*File).Allocate(2000); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("allocate beyond capacity: %v", err)
	}
	if size, _ := f.Size(); size != 100 {
		t.Fatalf("a failed allocate changed the size to %d", size)
	}
	must(t, f.(*File).Allocate(600))
	must(t, f.(*File).Allocate(50)) // no-op: already larger
	if free, _ := m.FreeSpace("/"); free != 400 {
		t.Fatalf("free %d", free)
	}
	// Allocated, unsynced: a cut may lose the extension, never yield garbage.
	must(t, m.SyncDir("/"))
	m.PowerCut()
	if _, err := m.FreeSpace("/"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("free space while down: %v", err)
	}
	m.Restart()
	got := readAll(t, m, "/f")
	if (len(got) != 0 && len(got) != 100 && len(got) != 600) || !allZero(got) {
		t.Fatalf("after cut: %d bytes", len(got))
	}
}

// TestFaultPowerCut: a PowerCut fault cuts the power at the chosen
// operation, which does not happen.
func TestFaultPowerCut(t *testing.T) {
	m := New(5)
	must(t, m.MkdirAll("/d", 0o700))
	m.SyncAll()
	f := create(t, m, "/d/a.tmp")
	write(t, f, []byte("snapshot"))
	must(t, f.Sync())
	var fired []string
	m.Inject(Fault{Op: OpRename, PowerCut: true, OnFire: func(op Op, p string) { fired = append(fired, op.String()+" "+p) }})
	if err := m.Rename("/d/a.tmp", "/d/a"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("rename: %v", err)
	}
	if !m.Down() || m.Cuts() != 1 || !slices.Equal(fired, []string{"rename /d/a.tmp"}) {
		t.Fatalf("down %v cuts %d fired %v", m.Down(), m.Cuts(), fired)
	}
	m.Restart()
	if exists(t, m, "/d/a") {
		t.Fatal("the rename at which the power was cut happened")
	}

	// Kill: the process dies at the fdatasync; the write stays unsynced.
	g := create(t, m, "/d/b")
	write(t, g, []byte("unsynced"))
	m.Inject(Fault{Op: OpSync, Kill: true})
	if err := g.Sync(); !errors.Is(err, ErrCrashed) || !m.Down() || m.Cuts() != 1 {
		t.Fatalf("sync at the kill: %v (down %v, cuts %d)", err, m.Down(), m.Cuts())
	}
	m.Restart()
	if got := string(readAll(t, m, "/d/b")); got != "unsynced" {
		t.Fatalf("after the kill: %q", got)
	}
}
