import RelayCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// State rebuilt from the journal, saved up to one record so that start-up reads only the
/// records after it instead of the whole history.
///
/// A checkpoint names the last record it reflects (sequence and position) and holds one opaque
/// section per participant (the delivery scheduler, the de-duplication index). It is only ever a
/// shortcut: the journal stays the truth, and a missing, damaged or mismatched checkpoint means
/// a full replay, never lost state.
///
/// File: `"RLYCKPT1"`, sequence (u64), segment (u64), offset (u64), section count (u32), then per
/// section its name and its bytes (u32-length-prefixed), then the CRC-32C of everything before.
public struct Checkpoint: Sendable, Equatable {
    /// The last journal record the state reflects.
    public var sequence: UInt64
    /// Where that record starts, so the replay after it starts without a scan.
    public var position: JournalPosition
    /// Each section's bytes. A decoded checkpoint's sections are slices of the file's bytes (a
    /// checkpoint can be tens of megabytes: start-up does not hold it twice).
    public var sections: [String: ArraySlice<UInt8>]

    public init(sequence: UInt64, position: JournalPosition, sections: [String: [UInt8]]) {
        self.init(sequence: sequence, position: position, slices: sections.mapValues { $0[...] })
    }

    init(sequence: UInt64, position: JournalPosition, slices: [String: ArraySlice<UInt8>]) {
        self.sequence = sequence
        self.position = position
        self.sections = slices
    }

    static let magic = Array("RLYCKPT1".utf8)

    /// The encoding, in pieces: each section's bytes are handed over where they are, never
    /// concatenated, so saving a checkpoint does not hold a second copy of it. The last piece
    /// is the CRC-32C of all before it.
    func encode(into emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var crc: UInt32 = 0
        func piece(_ bytes: some ContiguousBytes) throws {
            try bytes.withUnsafeBytes { raw in
                crc = CRC32C.checksum(raw, continuing: crc)
                try emit(raw)
            }
        }
        var header = ByteWriter(capacity: 64)
        for byte in Self.magic { header.write(byte) }
        header.write(sequence)
        header.write(position.segment)
        header.write(position.offset)
        header.write(UInt32(sections.count))
        try piece(header.bytes)
        for name in sections.keys.sorted() {
            let section = sections[name] ?? []
            var prefix = ByteWriter(capacity: name.utf8.count + 8)
            prefix.write(name)
            prefix.write(UInt32(section.count))
            try piece(prefix.bytes)
            try piece(section)
        }
        var trailer: [UInt8] = []
        trailer.appendLittleEndian(crc)
        try trailer.withUnsafeBytes { try emit($0) }
    }

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + sections.values.reduce(0) { $0 + $1.count + 64 })
        encode { bytes.append(contentsOf: $0) }
        return bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        guard bytes.count >= Self.magic.count + 4, Array(bytes.prefix(Self.magic.count)) == Self.magic else {
            throw CheckpointError("not a relay checkpoint (bad magic)")
        }
        let end = bytes.count - 4
        let stored = bytes.withUnsafeBytes { $0.loadLE(UInt32.self, at: end) }
        guard CRC32C.checksum(bytes[..<end]) == stored else { throw CheckpointError("checksum mismatch") }
        // Read in place (no copy of a file that can be tens of megabytes); the checksum is last.
        var reader = ByteReader(bytes)
        do {
            for _ in Self.magic { _ = try reader.read(UInt8.self) }
            sequence = try reader.read()
            position = JournalPosition(segment: try reader.read(), offset: try reader.read())
            let count = Int(try reader.read(UInt32.self))
            var sections: [String: ArraySlice<UInt8>] = [:]
            for _ in 0..<count {
                let name = try reader.readString()
                sections[name] = try reader.readSlice()
            }
            self.sections = sections
        } catch {
            throw CheckpointError("\(error)")
        }
        guard reader.offset == end else { throw CheckpointError("trailing bytes after the last section") }
    }
}

public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where checkpoints live: one file, replaced atomically (written to a temporary file, synced,
/// renamed over the old one, directory synced), so a crash leaves the old or the new one whole.
public struct CheckpointStore: Sendable {
    public let path: String

    public init(directory: String) {
        path = directory + "/checkpoint.bin"
    }

    /// The saved checkpoint, nil if there is none. Throws if the file exists but is unreadable or damaged.
    public func load() throws -> Checkpoint? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw CheckpointError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CheckpointError("cannot stat \(path)") }
        // Straight into one buffer (not Data, then a copy).
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while filled < bytes.count {
            let result = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return read(fd, base + filled, raw.count - filled)
            }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw CheckpointError("cannot read \(path)") }
            filled += result
        }
        return try Checkpoint(decoding: bytes)
    }

    /// Replaces the checkpoint and returns its size. Blocking (writes and syncs): call it off
    /// Swift's cooperative pool.
    @discardableResult
    public func save(_ checkpoint: Checkpoint) throws -> Int {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CheckpointError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var written = 0
        do {
            // Piece by piece, straight from the sections: no second copy of the whole checkpoint.
            try checkpoint.encode { raw in
                var done = 0
                while done < raw.count {
                    guard let base = raw.baseAddress else { return }
                    let result = Glibc.write(fd, base + done, raw.count - done)
                    if result < 0 {
                        if errno == EINTR { continue }
                        throw CheckpointError("cannot write \(temporary): \(String(cString: strerror(errno)))")
                    }
                    done += result
                }
                written += done
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        if let problem = replaceAtomically(fd: fd, temporary: temporary, path: path) { throw CheckpointError(problem) }
        return written
    }
}

/// Syncs and closes `fd` (the whole new content, written to `temporary`), renames `temporary`
/// over `path` and syncs the directory, so a crash leaves the old file or the new one whole.
/// Removes `temporary` on failure and returns what failed; nil when done.
func replaceAtomically(fd: Int32, temporary: String, path: String) -> String? {
    guard fsync(fd) == 0 else {
        let reason = String(cString: strerror(errno))
        close(fd)
        unlink(temporary)
        return "cannot sync \(temporary): \(reason)"
    }
    close(fd)
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        return "cannot replace \(path): \(reason)"
    }
    let directory = (path as NSString).deletingLastPathComponent
    let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dirfd >= 0 {
        _ = fsync(dirfd)
        close(dirfd)
    }
    return nil
}

/// State other than deliveries that is rebuilt by following the journal's events and saved in
/// checkpoints (the de-duplication index). The delivery scheduler, which reads every record,
/// feeds it each event and asks it for its section when it writes a checkpoint.
public protocol CheckpointParticipant: Sendable {
    /// The checkpoint section name, unique among participants.
    var checkpointSection: String { get }
    /// An event record read from the journal, at start-up or live (possibly one already known).
    func observe(_ event: EventHeader, now: Timestamp)
    /// A copy of the state, taken quickly; the returned closure encodes it (off the caller's thread).
    func checkpointSnapshot() -> @Sendable () -> [UInt8]
    /// Replaces the state with a section written by `checkpointSnapshot`.
    func restore(checkpoint: ArraySlice<UInt8>, now: Timestamp) throws
    /// Start-up has read the journal: give back capacity that growing record by record left
    /// unused (a full replay grows tables in steps; a restore sizes them exactly).
    func compact()
}
