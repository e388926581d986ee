import CRelayMemory
import RelayCore
import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The append-only, segmented, group-committed log that is the relay's source of truth.
///
/// `append` returns only after its records are written and `fdatasync`ed. Appenders that arrive
/// while a sync is in progress are written together by the next one (group commit), so many
/// concurrent requests share one write and one sync. A single writer thread does the blocking
/// I/O, never Swift's cooperative pool.
public final class Journal: Sendable {
    /// The last durable record and where the next one will go.
    public struct DurableState: Sendable, Equatable {
        /// Sequence number of the last durable record (0 before the first).
        public var lastSequence: UInt64
        /// End of the durable bytes: readers never read past it.
        public var end: JournalPosition
    }

    private struct Pending {
        var entries: [JournalEntry]
        var bytes: Int
        var completion: @Sendable (Result<[UInt64], any Error>) -> Void
    }

    private struct Shared {
        var queue: [Pending] = []
        var queuedBytes = 0
        var writerIdle = false
        var closing = false
        var writerExited = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var durableWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID: UInt64 = 0
        var durable: DurableState
        /// The records of the last commits, as written: the tail and the senders read fresh
        /// records from here instead of from disk.
        var recent = RecentRecords()
    }

    public let configuration: JournalConfiguration
    private let logger: Logger
    private let shared: Mutex<Shared>
    private let wakeup = DispatchSemaphore(value: 0)
    private let writer: Writer

    /// Opens (creating if needed) the journal in `configuration.directory`, recovering a torn tail.
    public static func open(_ configuration: JournalConfiguration, logger: Logger) throws -> Journal {
        let recovered = try JournalRecovery.recover(configuration, logger: logger)
        return Journal(configuration: configuration, logger: logger, recovered: recovered)
    }

    private init(configuration: JournalConfiguration, logger: Logger, recovered: JournalRecovery.Result) {
        self.configuration = configuration
        self.logger = logger
        self.shared = Mutex(Shared(durable: DurableState(
            lastSequence: recovered.nextSequence - 1,
            end: JournalPosition(segment: recovered.segmentBase, offset: recovered.endOffset)
        )))
        self.writer = Writer(
            configuration: configuration,
            file: recovered.file,
            segmentBase: recovered.segmentBase,
            offset: recovered.endOffset,
            nextSequence: recovered.nextSequence
        )
        let thread = Thread { [self] in
            // Named from inside (Foundation's Thread.name does not reach the kernel on Linux),
            // in at most 15 characters (Linux refuses longer names), so profiles and `top -H`
            // show the writer's work as the journal's.
            _ = relay_name_this_thread("relay-journal")
            self.writerLoop()
        }
        thread.start()
    }

    /// Whether `close()` has been called: tailing readers stop then.
    public var isClosing: Bool { shared.withLock { $0.closing } }

    /// The last durable sequence and the end of the durable bytes.
    public var durable: DurableState { shared.withLock { $0.durable } }

    /// Appends `entries` as consecutive records, all in the same group commit, and returns their
    /// sequence numbers once they are on disk. Throws if they could not be made durable, in which
    /// case none of them is acknowledged (a partial write is truncated away).
    public func append(_ entries: [JournalEntry]) async throws -> [UInt64] {
        guard !entries.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            enqueue(entries) { continuation.resume(with: $0) }
        }
    }

    /// Like `append`, without waiting: `completion` runs (on the writer thread, or at once if the
    /// entries are refused) when they are durable or have failed. `overQueueLimit` is for the
    /// relay's own small records whose number the caller bounds (delivery outcomes: at most the
    /// attempts in flight), so they are not refused when ingest has filled the write queue;
    /// ingest passes false and gets `.overloaded` instead.
    public func append(_ entries: [JournalEntry], overQueueLimit: Bool = true, completion: @escaping @Sendable (Result<[UInt64], any Error>) -> Void) {
        guard !entries.isEmpty else { return completion(.success([])) }
        enqueue(entries, overQueueLimit: overQueueLimit, completion: completion)
    }

    private func enqueue(_ entries: [JournalEntry], overQueueLimit: Bool = false, completion: @escaping @Sendable (Result<[UInt64], any Error>) -> Void) {
        var bytes = 0
        for entry in entries {
            guard entry.payload.count <= configuration.maxRecordSize else {
                return completion(.failure(JournalError(.recordTooLarge, "record of \(entry.payload.count) bytes exceeds the journal limit of \(configuration.maxRecordSize)")))
            }
            bytes += JournalFormat.recordHeaderSize + entry.payload.count
        }
        enum Outcome { case queued(signal: Bool), rejected(JournalError) }
        let outcome: Outcome = shared.withLock { state in
            if state.closing { return .rejected(JournalError(.closed, "the journal is shutting down")) }
            if !overQueueLimit && state.queuedBytes > 0 && state.queuedBytes + bytes > configuration.maxQueuedBytes {
                return .rejected(JournalError(.overloaded, "the journal write queue is full (\(state.queuedBytes) bytes waiting); retry shortly"))
            }
            state.queue.append(Pending(entries: entries, bytes: bytes, completion: completion))
            state.queuedBytes += bytes
            if state.writerIdle {
                state.writerIdle = false
                return .queued(signal: true)
            }
            return .queued(signal: false)
        }
        switch outcome {
        case .queued(let signal): if signal { wakeup.signal() }
        case .rejected(let error): completion(.failure(error))
        }
    }

    /// Convenience for a single record.
    public func append(_ entry: JournalEntry) async throws -> UInt64 {
        try await append([entry])[0]
    }

    /// Stops accepting appends, writes everything already queued, and closes the files.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (exited, signal) = shared.withLock { state -> (Bool, Bool) in
                state.closing = true
                if state.writerExited { return (true, false) }
                state.exitWaiters.append(continuation)
                let signal = state.writerIdle
                state.writerIdle = false
                return (false, signal)
            }
            if signal { wakeup.signal() }
            if exited { continuation.resume() }
        }
    }

    /// Returns once a record after `sequence` is durable, the journal is closing, or the task
    /// is cancelled: how a tailing reader waits for new records without polling.
    public func waitForDurable(after sequence: UInt64) async {
        let id = shared.withLock { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = shared.withLock { state -> Bool in
                    if state.durable.lastSequence > sequence || state.closing || Task.isCancelled { return true }
                    state.durableWaiters[id] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = shared.withLock { $0.durableWaiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    /// The durable records after `sequence` (at most `limit`) from memory, or nil when memory no
    /// longer holds the one right after it (then read them from disk). Empty when there is none.
    public func recentRecords(after sequence: UInt64, limit: Int) -> [JournalRecord]? {
        shared.withLock { state in
            state.durable.lastSequence <= sequence ? [] : state.recent.records(after: sequence, limit: limit)
        }
    }

    /// The record at `position` if it is among the last commits held in memory.
    public func recentRecord(at position: JournalPosition) -> JournalRecord? {
        shared.withLock { $0.recent.record(at: position) }
    }

    /// The record at `position` (random access, for the body of an event being delivered): from
    /// memory while it is among the last commits, else from disk.
    public func read(at position: JournalPosition) throws -> JournalRecord {
        if let record = recentRecord(at: position) { return record }
        guard position < durable.end else { throw JournalError(.invalidArgument, "position \(position) is past the durable end") }
        let path = configuration.directory + "/" + JournalFormat.segmentName(base: position.segment)
        let fd = try SegmentScanner.openReadOnly(path)
        defer { _ = Glibc.close(fd) }
        // Exactly the record's bytes: its header, then header and payload (not a scanner's 1 MiB
        // read-ahead, which every delivery would pay for).
        let header = try SegmentScanner.read(fd: fd, path: path, offset: position.offset, count: JournalFormat.recordHeaderSize)
        guard header.count == JournalFormat.recordHeaderSize else {
            throw JournalError(.corrupt, "no record header at offset \(position.offset)", path: path)
        }
        let length = Int(header.withUnsafeBytes { $0.loadLE(UInt32.self, at: 0) })
        guard length <= configuration.maxRecordSize else {
            throw JournalError(.corrupt, "record at offset \(position.offset) declares \(length) bytes", path: path)
        }
        let bytes = try SegmentScanner.read(fd: fd, path: path, offset: position.offset, count: JournalFormat.recordHeaderSize + length)
        let frame = bytes.withUnsafeBytes { JournalFormat.parseFrame($0, maxPayload: configuration.maxRecordSize) }
        guard case .record(let sequence, let type, let range, _, _, _) = frame else {
            throw JournalError(.corrupt, "no valid record at offset \(position.offset)", path: path)
        }
        let payload = Array(bytes[range])
        return JournalRecord(sequence: sequence, type: type, payload: payload, position: position)
    }

    /// A reader from the record at `position` (sequence `sequence`) that sees only durable records.
    public func reader(at position: JournalPosition, sequence: UInt64) -> JournalReader {
        JournalReader(directory: configuration.directory, at: position, sequence: sequence, maxRecordSize: configuration.maxRecordSize, limit: { [self] in self.durable.end })
    }

    /// A reader from `sequence` (1 = the beginning) that sees only durable records.
    public func reader(from sequence: UInt64 = 1) -> JournalReader {
        JournalReader(
            directory: configuration.directory,
            from: sequence,
            maxRecordSize: configuration.maxRecordSize,
            limit: { [self] in self.durable.end }
        )
    }

    // MARK: - Writer thread

    private func writerLoop() {
        while true {
            enum Next { case batch([Pending]), wait, exit([CheckedContinuation<Void, Never>]) }
            let next: Next = shared.withLock { state in
                if state.queue.isEmpty {
                    if state.closing {
                        state.writerExited = true
                        // Resumed after the lock is released: resuming takes the task's status
                        // lock, which a cancellation holds while its handler waits for this one.
                        let waiters = state.exitWaiters + Array(state.durableWaiters.values)
                        state.exitWaiters = []
                        state.durableWaiters = [:]
                        return .exit(waiters)
                    }
                    state.writerIdle = true
                    return .wait
                }
                var taken = 0
                var bytes = 0
                while taken < state.queue.count && (taken == 0 || bytes + state.queue[taken].bytes <= configuration.maxBatchBytes) {
                    bytes += state.queue[taken].bytes
                    taken += 1
                }
                let batch = Array(state.queue.prefix(taken))
                state.queue.removeFirst(taken)
                return .batch(batch)
            }
            switch next {
            case .wait:
                wakeup.wait()
            case .batch(let batch):
                commit(batch)
            case .exit(let waiters):
                writer.close()
                for waiter in waiters { waiter.resume() }
                return
            }
        }
    }

    private func commit(_ batch: [Pending]) {
        let batchBytes = batch.reduce(0) { $0 + $1.bytes }
        let started = ContinuousClock.now
        let result = Result { try writer.write(batch.map(\.entries), logger: logger) }
        if case .success = result, let observe = configuration.commitObserver {
            observe(batch.reduce(0) { $0 + $1.entries.count }, ContinuousClock.now - started)
        }
        let durable: DurableState? = (try? result.get()) != nil
            ? DurableState(lastSequence: writer.nextSequence - 1, end: JournalPosition(segment: writer.segmentBase, offset: writer.offset))
            : nil
        let written = durable == nil ? [] : writer.takeWritten()
        let waiters = shared.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.queuedBytes -= batchBytes
            guard let durable else { return [] }
            state.durable = durable
            state.recent.append(written, budget: configuration.recentRecordBytes)
            defer { state.durableWaiters = [:] }
            return Array(state.durableWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
        switch result {
        case .success(let sequences):
            for (pending, numbers) in zip(batch, sequences) { pending.completion(.success(numbers)) }
        case .failure(let error):
            for pending in batch { pending.completion(.failure(error)) }
        }
    }
}

extension Journal {
    /// State owned by the writer thread alone: the open segment, its size and the next sequence.
    ///
    /// `@unchecked Sendable` because only the writer thread touches it after `init`; the
    /// initial values are handed over before the thread starts (Thread.start is a barrier).
    final class Writer: @unchecked Sendable {
        let configuration: JournalConfiguration
        var file: (any JournalWritableFile)?
        private(set) var segmentBase: UInt64
        private(set) var offset: UInt64
        private(set) var nextSequence: UInt64
        /// Set when a failed write could not be rolled back: nothing more is written.
        private var broken: JournalError?
        private var buffer: [UInt8] = []
        /// The records the last successful `write` made durable (their payloads are the entries'
        /// own arrays, not copies).
        private var written: [JournalRecord] = []

        func takeWritten() -> [JournalRecord] {
            defer { written = [] }
            return written
        }

        init(configuration: JournalConfiguration, file: any JournalWritableFile, segmentBase: UInt64, offset: UInt64, nextSequence: UInt64) {
            self.configuration = configuration
            self.file = file
            self.segmentBase = segmentBase
            self.offset = offset
            self.nextSequence = nextSequence
        }

        /// Writes and syncs every group of entries; returns their sequence numbers per group.
        func write(_ groups: [[JournalEntry]], logger: Logger) throws -> [[UInt64]] {
            if let broken { throw JournalError(.unavailable, "the journal cannot write until the relay restarts: \(broken)") }
            if offset >= configuration.segmentSize && nextSequence > segmentBase {
                try rotate(logger: logger)
            }
            guard let file else { throw JournalError(.unavailable, "no open journal segment") }
            buffer.removeAll(keepingCapacity: true)
            written.removeAll(keepingCapacity: true)
            var sequence = nextSequence
            var numbers: [[UInt64]] = []
            numbers.reserveCapacity(groups.count)
            let last = nextSequence + UInt64(groups.reduce(0) { $0 + $1.count }) - 1
            for group in groups {
                var groupNumbers: [UInt64] = []
                groupNumbers.reserveCapacity(group.count)
                for entry in group {
                    written.append(JournalRecord(sequence: sequence, type: entry.type, payload: entry.payload, position: JournalPosition(segment: segmentBase, offset: offset + UInt64(buffer.count))))
                    JournalFormat.appendRecord(
                        to: &buffer, sequence: sequence, type: entry.type, payload: entry.payload,
                        startsCommit: sequence == nextSequence, endsCommit: sequence == last
                    )
                    groupNumbers.append(sequence)
                    sequence += 1
                }
                numbers.append(groupNumbers)
            }
            do {
                try buffer.withUnsafeBytes { try file.write($0, at: offset) }
                try file.sync()
            } catch {
                // Nothing of this batch is acknowledged; cut it away so the file stays a clean
                // sequence of records, and keep writing if that works (e.g. after ENOSPC clears).
                do {
                    try file.truncate(to: offset)
                    try file.sync()
                } catch let rollback {
                    let failure = (rollback as? JournalError) ?? JournalError(.io, "\(rollback)")
                    broken = failure
                    logger.critical("journal rollback failed; refusing further writes", metadata: ["error": "\(failure)"])
                }
                written = []  // never handed on: nothing of this batch is durable
                throw error
            }
            offset += UInt64(buffer.count)
            nextSequence = sequence
            if buffer.count > 1 << 24 { buffer = [] }  // do not keep a huge buffer around after a burst
            return numbers
        }

        private func rotate(logger: Logger) throws {
            let base = nextSequence
            let path = configuration.directory + "/" + JournalFormat.segmentName(base: base)
            let newFile = try configuration.fileSystem.openWritable(path: path, create: true)
            do {
                let header = JournalFormat.segmentHeader(base: base)
                try header.withUnsafeBytes { try newFile.write($0, at: 0) }
                try newFile.sync()
                try configuration.fileSystem.syncDirectory(path: configuration.directory)
            } catch {
                newFile.close()
                unlink(path)
                throw error
            }
            file?.close()
            file = newFile
            segmentBase = base
            offset = UInt64(JournalFormat.segmentHeaderSize)
            logger.debug("journal segment started", metadata: ["segment": "\(JournalFormat.segmentName(base: base))"])
        }

        func close() {
            file?.close()
            file = nil
        }
    }
}
