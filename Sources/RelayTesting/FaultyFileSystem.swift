import RelayCore
import RelayJournal
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A journal file system that behaves like the real one until told to fail: then writes (and
/// optionally syncs) fail with the given errno, as a full or broken disk would.
public final class FaultyFileSystem: JournalFileSystem {
    private let real = POSIXJournalFileSystem()
    private let failure = Mutex<Int32?>(nil)
    private let syncFailure = Mutex<(errno: Int32, remaining: Int)?>(nil)
    private let syncDelay = Mutex<Duration>(.zero)
    private let partial = Atomic<Bool>(false)
    private let syncs = Atomic<Int>(0)
    private let held = Atomic<Bool>(false)

    /// fdatasync calls begun so far (tests wait on it to know a write is in progress).
    public var syncsStarted: Int { syncs.load(ordering: .relaxed) }

    public init() {}

    /// Makes every following write fail with `errno` (e.g. ENOSPC); nil restores normal writes.
    /// With `partialWrite`, half of each failing write reaches the file first, as on a disk that
    /// fills up mid-write.
    public func failWrites(_ errno: Int32?, partialWrite: Bool = false) {
        failure.withLock { $0 = errno }
        partial.store(partialWrite, ordering: .relaxed)
    }

    /// Makes the next `times` fdatasync calls (default: all) fail with `errno`, after the bytes
    /// were written; nil restores.
    public func failSyncs(_ errno: Int32?, times: Int = .max) {
        syncFailure.withLock { $0 = errno.map { ($0, times) } }
    }

    /// Makes every fdatasync take at least `delay` (a slow disk).
    public func delaySyncs(_ delay: Duration) {
        syncDelay.withLock { $0 = delay }
    }

    /// Makes every fdatasync wait until `releaseSyncs()` (a disk that stalls): a test then
    /// knows a commit is in progress for as long as it needs, with no timing assumption.
    public func holdSyncs() {
        held.store(true, ordering: .relaxed)
    }

    /// Lets held and later fdatasync calls go on.
    public func releaseSyncs() {
        held.store(false, ordering: .relaxed)
    }

    var syncsHeld: Bool { held.load(ordering: .relaxed) }
    var currentFailure: Int32? { failure.withLock { $0 } }
    /// Consumes one injected sync failure, if any.
    func takeSyncFailure() -> Int32? {
        syncFailure.withLock { state in
            guard let current = state, current.remaining > 0 else { return nil }
            state = (current.errno, current.remaining - 1)
            return current.errno
        }
    }
    var currentSyncDelay: Duration { syncDelay.withLock { $0 } }
    var writesPartially: Bool { partial.load(ordering: .relaxed) }

    public func openWritable(path: String, create: Bool) throws -> any JournalWritableFile {
        if let errno = currentFailure, create {
            throw JournalError(.io, "injected failure creating segment", path: path, errno: errno)
        }
        return FaultyFile(inner: try real.openWritable(path: path, create: create), owner: self)
    }

    public func syncDirectory(path: String) throws {
        try real.syncDirectory(path: path)
    }

    final class FaultyFile: JournalWritableFile {
        let inner: any JournalWritableFile
        let owner: FaultyFileSystem

        init(inner: any JournalWritableFile, owner: FaultyFileSystem) {
            self.inner = inner
            self.owner = owner
        }

        func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
            if let errno = owner.currentFailure {
                if owner.writesPartially && bytes.count > 1 {
                    try inner.write(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count / 2)]), at: offset)
                }
                throw JournalError(.io, "injected write failure", errno: errno)
            }
            try inner.write(bytes, at: offset)
        }

        func sync() throws {
            owner.syncs.add(1, ordering: .relaxed)
            while owner.syncsHeld {
                usleep(1_000)
            }
            let delay = owner.currentSyncDelay
            if delay > .zero {
                let nanos = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
                // In steps under a second (usleep's limit).
                var micros = nanos / 1_000
                while micros > 0 {
                    let step = min(micros, 500_000)
                    usleep(useconds_t(step))
                    micros -= step
                }
            }
            if let errno = owner.takeSyncFailure() { throw JournalError(.io, "injected fdatasync failure", errno: errno) }
            try inner.sync()
        }
        func truncate(to size: UInt64) throws { try inner.truncate(to: size) }
        func size() throws -> UInt64 { try inner.size() }
        func close() { inner.close() }
    }
}

/// Every record of the journal in `directory`, from sequence `from` on (read offline).
public func readAll(_ directory: String, from: UInt64 = 1) throws -> [JournalRecord] {
    let reader = JournalReader(directory: directory, from: from)
    var records: [JournalRecord] = []
    while let record = try reader.next() { records.append(record) }
    return records
}
