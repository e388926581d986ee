import Foundation
import Logging
import RelayCore
import Synchronization

/// Deletes old journal segments, oldest first: a sealed segment goes once every event in it is
/// older than the retention and nothing in it is unfinished (no pending delivery, no running
/// replay needs one of its events). A segment that is old enough but still needed is *held*:
/// kept, counted in `heldSegments`, and logged once. Only a prefix of the journal is ever
/// deleted, so what remains is contiguous, and the active segment is never touched.
public final class JournalRetention: Sendable {
    private let journal: Journal
    /// Events older than this may go; 0 keeps everything.
    public let retentionMillis: Int64
    private let logger: Logger
    /// The newest event time of each sealed segment (sealed segments never change).
    private let newestEventTimes = Mutex<[UInt64: Int64?]>([:])
    private let held = Atomic<Int>(0)
    private let reportedHeld = Mutex<Set<UInt64>>([])

    public init(journal: Journal, retentionMillis: Int64, logger: Logger) {
        self.journal = journal
        self.retentionMillis = max(0, retentionMillis)
        self.logger = logger
    }

    /// Segments old enough to go but kept because something in them is unfinished.
    public var heldSegments: Int { held.load(ordering: .relaxed) }

    /// What one pass found.
    public struct Plan: Sendable, Equatable {
        /// Segments (by base sequence) to delete, oldest first.
        public var deletable: [UInt64] = []
        /// Old enough, but needed.
        public var held: [UInt64] = []
    }

    /// Which segments may go at `now`, given that every event from sequence `keepFrom` on is
    /// still needed (nil: none is). Blocking: it may read sealed segments once each.
    public func plan(now: Timestamp, keepFrom: UInt64?) throws -> Plan {
        var plan = Plan()
        guard retentionMillis > 0 else { return plan }
        let cutoff = now.milliseconds - retentionMillis
        let active = journal.durable.end.segment
        let bases = try JournalRecovery.segmentBases(in: journal.configuration.directory).filter { $0 <= active }
        for (index, base) in bases.enumerated() where index + 1 < bases.count {
            let next = bases[index + 1]
            // Events are appended as they are received: a segment whose newest event is older
            // than the cutoff holds nothing newer. A segment without events is as old as the one
            // before it (it holds only outcomes of earlier events).
            if let newest = try newestEventTime(base: base, next: next), newest >= cutoff { break }
            if let keepFrom, next > keepFrom {
                plan.held.append(base)
            } else if plan.held.isEmpty {
                plan.deletable.append(base)
            } else {
                plan.held.append(base)  // behind a held one: only a prefix is ever deleted
            }
        }
        return plan
    }

    /// `plan` with only the deletable segments that end before `keepFrom` (nil: all of them);
    /// the others become held. For a caller whose needs grew while the plan was made.
    public func trimmed(_ plan: Plan, keepFrom: UInt64?) throws -> Plan {
        guard let keepFrom, !plan.deletable.isEmpty else { return plan }
        let bases = try JournalRecovery.segmentBases(in: journal.configuration.directory)
        var result = Plan(deletable: [], held: plan.held)
        for base in plan.deletable {
            let next = bases.first { $0 > base } ?? UInt64.max
            if next <= keepFrom && result.held.count == plan.held.count {
                result.deletable.append(base)
            } else {
                result.held.insert(base, at: result.held.count - plan.held.count)
            }
        }
        return result
    }

    /// Deletes `plan.deletable` (the caller has made every record queued before it durable),
    /// records and logs what is held; returns the bytes freed.
    @discardableResult
    public func apply(_ plan: Plan) throws -> Int64 {
        let directory = journal.configuration.directory
        var freed: Int64 = 0
        for base in plan.deletable {
            let path = directory + "/" + JournalFormat.segmentName(base: base)
            let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
            guard unlink(path) == 0 || errno == ENOENT else {
                throw JournalError(.io, "cannot delete an expired journal segment", path: path, errno: errno)
            }
            freed += size
            newestEventTimes.withLock { _ = $0.removeValue(forKey: base) }
            logger.info("journal segment deleted by retention", metadata: ["segment": "\(JournalFormat.segmentName(base: base))", "bytes": "\(size)"])
        }
        if !plan.deletable.isEmpty { try journal.configuration.fileSystem.syncDirectory(path: directory) }
        held.store(plan.held.count, ordering: .relaxed)
        let newlyHeld = reportedHeld.withLock { reported in
            let fresh = plan.held.filter { !reported.contains($0) }
            reported = Set(plan.held)
            return fresh
        }
        for base in newlyHeld {
            logger.warning("journal segment past retention is kept: deliveries or a replay still need its events", metadata: [
                "segment": "\(JournalFormat.segmentName(base: base))",
            ])
        }
        return freed
    }

    /// The newest event receive time in the sealed segment `base` (records up to `next`), nil
    /// if it holds no event.
    private func newestEventTime(base: UInt64, next: UInt64) throws -> Int64? {
        if let known = newestEventTimes.withLock({ $0[base] }) { return known }
        let reader = journal.reader(at: JournalPosition(segment: base, offset: UInt64(JournalFormat.segmentHeaderSize)), sequence: base)
        var newest: Int64?
        while let record = try reader.next(), record.sequence < next {
            guard record.type == .event else { continue }
            let time = try EventHeader(decoding: record.payload).receivedAt.milliseconds
            newest = max(newest ?? time, time)
        }
        newestEventTimes.withLock { $0[base] = .some(newest) }
        return newest
    }
}
