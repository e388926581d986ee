import RelayCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A journal segment open for writing. Used only from the journal's writer thread.
public protocol JournalWritableFile: AnyObject {
    /// Writes all of `bytes` at `offset` (retrying short writes and EINTR).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws
    /// Makes every byte written so far durable (`fdatasync`).
    func sync() throws
    /// Cuts the file to `size` bytes.
    func truncate(to size: UInt64) throws
    /// The file's current size.
    func size() throws -> UInt64
    func close()
}

/// Where the journal's writes go. The default is the real file system; tests inject one that
/// fails on demand to prove that a failed write is never acknowledged.
public protocol JournalFileSystem: Sendable {
    /// Opens (and with `create`, creates exclusively) a segment file for writing.
    func openWritable(path: String, create: Bool) throws -> any JournalWritableFile
    /// Makes a directory's entries durable, so a newly created segment survives a crash.
    func syncDirectory(path: String) throws
}

/// The real file system, through POSIX calls.
public struct POSIXJournalFileSystem: JournalFileSystem {
    public init() {}

    public func openWritable(path: String, create: Bool) throws -> any JournalWritableFile {
        let flags = O_WRONLY | O_CLOEXEC | (create ? (O_CREAT | O_EXCL) : 0)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else {
            throw JournalError(.io, "cannot open journal segment for writing", path: path, errno: errno)
        }
        return POSIXWritableFile(fd: fd, path: path)
    }

    public func syncDirectory(path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw JournalError(.io, "cannot open journal directory", path: path, errno: errno) }
        defer { _ = Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw JournalError(.io, "cannot fsync journal directory", path: path, errno: errno) }
    }
}

final class POSIXWritableFile: JournalWritableFile {
    private var fd: Int32
    private let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close() }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < bytes.count {
            let result = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw JournalError(.io, "journal write failed", path: path, errno: errno)
            }
            if result == 0 { throw JournalError(.io, "journal write made no progress", path: path, errno: ENOSPC) }
            done += result
        }
    }

    func sync() throws {
        guard fdatasync(fd) == 0 else { throw JournalError(.io, "journal fdatasync failed", path: path, errno: errno) }
    }

    func truncate(to size: UInt64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else {
            throw JournalError(.io, "journal truncate failed", path: path, errno: errno)
        }
    }

    func size() throws -> UInt64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw JournalError(.io, "cannot stat journal segment", path: path, errno: errno) }
        return UInt64(info.st_size)
    }

    func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }
}
