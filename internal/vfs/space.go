package vfs

// Optional extensions, found by type assertion. An FS or File without them
// still works: callers fall back (see each interface).

// StatFS is implemented by an FS that can report free space. The WAL uses
// it to leave its disk-full state once space was freed; without it (or when
// FreeSpace returns an error) the WAL probes by re-creating its reserve file.
type StatFS interface {
	// FreeSpace returns the bytes an unprivileged process may still
	// allocate on the file system that holds path (statfs f_bavail ×
	// f_bsize). It may be called from any goroutine. It returns an error
	// matching errors.ErrUnsupported where the platform cannot tell.
	FreeSpace(path string) (uint64, error)
}

// Allocator is implemented by a File that can reserve disk blocks without
// writing them (fallocate). Callers that need the space really allocated
// fall back to writing zeros when it is missing or returns an error
// matching errors.ErrUnsupported.
type Allocator interface {
	// Allocate allocates the blocks of bytes [0, size) of the file,
	// extending it to size if it is shorter (fallocate mode 0). New bytes
	// read as zeros. It fails with syscall.ENOSPC when the space is not
	// there. As for Write, Sync makes the result durable.
	Allocate(size int64) error
}

var (
	_ StatFS    = osFS{}
	_ Allocator = osFile{}
)
