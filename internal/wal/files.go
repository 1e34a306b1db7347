package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/beaver-raft/beaver-raft/internal/vfs"
)

// File modes of everything the log creates.
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// brokenPath returns an unused name for a .broken copy of path: path.broken,
// then path.broken.1, path.broken.2, ... so earlier evidence is never
// overwritten.
func brokenPath(fsys vfs.FS, path string) (string, error) {
	p := path + ".broken"
	for i := 1; i <= 10000; i++ {
		_, err := fsys.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		p = fmt.Sprintf("%s.broken.%d", path, i)
	}
	return "", fmt.Errorf("wal: too many .broken copies of %s", path)
}

// saveBroken writes data to a new .broken copy of path and makes it durable
// (file and directory) before the caller changes the original.
func saveBroken(fsys vfs.FS, path string, data []byte) (string, error) {
	dst, err := brokenPath(fsys, path)
	if err != nil {
		return "", err
	}
	f, err := fsys.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.SyncDir(filepath.Dir(dst))
	}
	if err != nil {
		return "", fmt.Errorf("wal: save %s: %w", dst, err)
	}
	return dst, nil
}

// truncateFile cuts the file at path to size and fsyncs it.
func truncateFile(fsys vfs.FS, path string, size int64) error {
	f, err := fsys.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: truncate %s to %d: %w", path, size, err)
	}
	return nil
}

// resetSegment empties the segment at path and writes a fresh header for
// base, fsynced.
func resetSegment(fsys vfs.FS, path string, base uint64) error {
	f, err := fsys.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err == nil {
		_, err = f.Write(appendSegmentHeader(nil, base))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: reset segment %s: %w", path, err)
	}
	return nil
}

// createSegment creates the segment file for base with its header, makes the
// file and the directory entry durable, and returns the file open for
// appending.
func createSegment(fsys vfs.FS, dir string, base uint64) (vfs.File, string, error) {
	path := filepath.Join(dir, segmentName(base))
	f, err := fsys.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode)
	if err != nil {
		return nil, path, err
	}
	_, err = f.Write(appendSegmentHeader(nil, base))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = fsys.SyncDir(dir)
	}
	if err != nil {
		f.Close()
		return nil, path, fmt.Errorf("wal: create segment %s: %w", path, err)
	}
	return f, path, nil
}

// removeFile deletes path and makes the removal durable.
func removeFile(fsys vfs.FS, path string) error {
	if err := fsys.Remove(path); err != nil {
		return err
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("wal: sync dir after removing %s: %w", path, err)
	}
	return nil
}

// ensureDir creates dir (0700) and its missing parents if needed, and makes
// each new entry durable (a directory fsync of its parent).
func ensureDir(fsys vfs.FS, dir string) error {
	dir = filepath.Clean(dir)
	if _, err := fsys.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := ensureDir(fsys, parent); err != nil {
			return err
		}
	}
	if err := fsys.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	return fsys.SyncDir(parent)
}
