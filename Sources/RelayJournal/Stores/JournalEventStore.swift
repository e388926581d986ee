import RelayCore
import Synchronization

/// Answers queries by reading the journal, newest segment first. Nothing is held in memory
/// between queries but each segment's first event time (to find an event by id, whose time is
/// in the id). Blocking file I/O: call it off Swift's cooperative pool.
///
/// A listing reads back from the end of the journal to the page it returns (outcomes come after
/// their events, so the delivery state of an event is known once everything after it was read);
/// it keeps only a small reference per matching event until the page is chosen.
public final class JournalEventStore: EventStore {
    private let journal: Journal
    private let io: any BlockingIO
    private let firstEventTimes = Mutex<[UInt64: Int64]>([:])

    public init(journal: Journal, io: any BlockingIO) {
        self.journal = journal
        self.io = io
    }

    // MARK: - The port, off the cooperative pool

    public func page(filter: EventFilter, cursor: String?, limit: Int) async throws -> EventPage {
        try await io.run { try self.pageNow(filter: filter, cursor: cursor, limit: limit) }
    }

    public func detail(id: String) async throws -> EventDetail? {
        try await io.run { try self.detailNow(id: id) }
    }

    public func deliveries(filter: EventFilter, state: DeliveryState?, destinations: Set<String>, cursor: String?, limit: Int) async throws -> DeliveryPage {
        try await io.run { try self.deliveriesNow(filter: filter, state: state, destinations: destinations, cursor: cursor, limit: limit) }
    }

    public func matches(filter: EventFilter, through mark: UInt64, prepare: @escaping @Sendable (Event) -> PreparedRouting) -> AsyncThrowingStream<StoredEventMatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: StoredEventMatch.self)
        let stopped = StopFlag()
        continuation.onTermination = { _ in stopped.stop() }
        io.submit {
            do {
                try self.scan(filter: filter, through: mark, prepare: prepare) { match in
                    continuation.yield(match)
                    return !stopped.isStopped
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return stream
    }

    public func event(_ reference: EventReference) async throws -> Event {
        try await io.run { try self.eventNow(reference) }
    }

    public func mark() async throws -> UInt64 { journal.durable.lastSequence }

    /// The event at `reference`, read now (blocking).
    public func eventNow(_ reference: EventReference) throws -> Event {
        try Event(decoding: journal.read(at: JournalPosition(reference.locator)).payload)
    }

    /// Tells a scan on another thread that its reader has gone.
    private final class StopFlag: Sendable {
        private let flag = Atomic<Bool>(false)
        func stop() { flag.store(true, ordering: .relaxed) }
        var isStopped: Bool { flag.load(ordering: .relaxed) }
    }

    // MARK: - Blocking implementation

    private struct Candidate {
        var sequence: UInt64
        var position: JournalPosition
        var id = ""
        var receivedAt = Timestamp(milliseconds: 0)
        var decision: RoutingDecision?
        var prepared = PreparedRouting.none
        var destinations: [String] { decision?.destinations ?? [] }
    }

    /// The latest outcome per (event sequence, destination), with the sequence of its record.
    private typealias Outcomes = [UInt64: [String: (record: UInt64, outcome: DeliveryRecord.Outcome)]]

    func pageNow(filter: EventFilter, cursor: String?, limit: Int) throws -> EventPage {
        let before = try cursor.map(EventFilter.parseCursor) ?? UInt64.max
        let limit = max(1, limit)
        var chosen: [StoredEventMatch] = []
        try scan(filter: filter, through: before - 1, prepare: { _ in .none }) { match in
            chosen.append(match)
            return chosen.count <= limit
        }
        let more = chosen.count > limit
        let page = try chosen.prefix(limit).map { match in
            EventSummary(reference: match.reference, event: try eventNow(match.reference), decision: match.decision, deliveries: match.deliveries)
        }
        return EventPage(events: page, nextCursor: more ? page.last.map { String($0.sequence) } : nil)
    }

    func deliveriesNow(filter: EventFilter, state: DeliveryState?, destinations: Set<String>, cursor: String?, limit: Int) throws -> DeliveryPage {
        let before = try cursor.map(EventFilter.parseCursor) ?? UInt64.max
        var selection = filter
        selection.deliveryState = nil
        var builder = DeliveryPageBuilder(state: state, destinations: destinations, limit: limit)
        try scan(filter: selection, through: before - 1, prepare: { _ in .none }) { match in
            builder.add(match.reference, id: match.id, receivedAt: match.receivedAt, deliveries: match.deliveries)
        }
        return builder.page
    }

    /// Reads segments newest first; within one, records in order, keeping a small candidate per
    /// matching event and every outcome seen (outcomes come after their events, so once a
    /// segment is read, the state of its events is known). Candidates go to `visit` newest first.
    func scan(filter: EventFilter, through: UInt64, prepare: (Event) -> PreparedRouting, visit: (StoredEventMatch) throws -> Bool) throws {
        var outcomes: Outcomes = [:]
        for segment in try segments().reversed() {
            var candidates: [Candidate] = []
            var oldest: Timestamp?
            try scan(segment) { record in
                switch record.type {
                case .event where record.sequence <= through:
                    guard let event = try? Event(decoding: record.payload) else { return }
                    oldest = oldest ?? event.receivedAt
                    if filter.matches(event) {
                        candidates.append(Candidate(sequence: record.sequence, position: record.position, id: event.id, receivedAt: event.receivedAt, prepared: prepare(event)))
                    }
                case .routingDecision:
                    guard let last = candidates.last, last.sequence == record.sequence - 1,
                          let decision = try? RoutingDecision(decoding: record.payload) else { return }
                    candidates[candidates.count - 1].decision = decision
                case .deliveryAttempt:
                    Self.note(record, in: &outcomes)
                default:
                    return
                }
            }
            for candidate in candidates.reversed() {
                let deliveries = candidate.destinations.map { ($0, Self.state(candidate.sequence, $0, outcomes)) }
                let match = StoredEventMatch(
                    reference: EventReference(sequence: candidate.sequence, locator: candidate.position.locator), id: candidate.id, receivedAt: candidate.receivedAt,
                    decision: candidate.decision, deliveries: deliveries, prepared: candidate.prepared
                )
                if let wanted = filter.deliveryState, match.deliveryState != wanted { continue }
                if try !visit(match) { return }
            }
            // Segments hold events in arrival order: once one starts before `since`, older ones hold nothing newer.
            if let since = filter.since, let oldest, oldest < since { return }
        }
    }

    func detailNow(id: String) throws -> EventDetail? {
        let packed = EventIDGenerator.pack(id)
        guard packed.high != 0 || packed.low != 0 else { return nil }
        let millis = Int64(packed.high >> 16)
        for segment in try segments().reversed() {
            // Ids carry their receive time; a segment whose first event came well after it cannot hold it.
            if let first = try firstEventTime(segment: segment.base), first > millis + 60_000 { continue }
            var found: (sequence: UInt64, position: JournalPosition)?
            try scan(segment) { record in
                guard found == nil, record.type == .event, let event = try? Event(decoding: record.payload), event.id == id else { return }
                found = (record.sequence, record.position)
            }
            guard let found else { continue }
            // Its decision follows it; its attempts are anywhere after it.
            var candidate = Candidate(sequence: found.sequence, position: found.position)
            var attempts: [DeliveryRecord] = []
            var outcomes: Outcomes = [:]
            let reader = journal.reader(at: found.position, sequence: found.sequence)
            while let record = try reader.next() {
                if record.type == .routingDecision, record.sequence == found.sequence + 1, let decision = try? RoutingDecision(decoding: record.payload) {
                    candidate.decision = decision
                } else if record.type == .deliveryAttempt, let attempt = try? DeliveryRecord(decoding: record.payload), attempt.eventSequence == found.sequence {
                    attempts.append(attempt)
                    Self.note(record, in: &outcomes)
                }
            }
            return EventDetail(summary: try summary(of: candidate, outcomes), attempts: attempts)
        }
        return nil
    }

    // MARK: -

    private func summary(of candidate: Candidate, _ outcomes: Outcomes) throws -> EventSummary {
        let record = try journal.read(at: candidate.position)
        let event = try Event(decoding: record.payload)
        let deliveries = candidate.destinations.map { ($0, Self.state(candidate.sequence, $0, outcomes)) }
        return EventSummary(reference: EventReference(sequence: candidate.sequence, locator: candidate.position.locator), event: event, decision: candidate.decision, deliveries: deliveries)
    }

    private static func note(_ record: JournalRecord, in outcomes: inout Outcomes) {
        guard let attempt = try? DeliveryRecord(decoding: record.payload) else { return }
        // A replay changes a delivery's state only by succeeding (a dead delivery replayed with
        // success is delivered); its retries and failures leave the delivery as it was.
        if deliveryState(after: attempt) == nil { return }
        if let known = outcomes[attempt.eventSequence]?[attempt.destination], known.record > record.sequence { return }
        outcomes[attempt.eventSequence, default: [:]][attempt.destination] = (record.sequence, attempt.outcome)
    }

    private static func state(_ sequence: UInt64, _ destination: String, _ outcomes: Outcomes) -> DeliveryState {
        switch outcomes[sequence]?[destination]?.outcome {
        case .succeeded?: .succeeded
        case .dead?: .dead
        case .retry?, nil: .pending
        }
    }


    /// Segments up to the durable end, oldest first, each with the base of the one after it
    /// (listed once per query, not once per segment read).
    private func segments() throws -> [(base: UInt64, next: UInt64?)] {
        let end = journal.durable.end.segment
        let bases = try JournalRecovery.segmentBases(in: journal.configuration.directory).filter { $0 <= end }
        return bases.enumerated().map { index, base in (base, index + 1 < bases.count ? bases[index + 1] : nil) }
    }

    /// Calls `body` with every durable record of one segment, in order.
    private func scan(_ segment: (base: UInt64, next: UInt64?), _ body: (JournalRecord) throws -> Void) throws {
        let reader = journal.reader(at: JournalPosition(segment: segment.base, offset: UInt64(JournalFormat.segmentHeaderSize)), sequence: segment.base)
        while let record = try reader.next() {
            if let next = segment.next, record.sequence >= next { return }
            try body(record)
        }
    }

    private func firstEventTime(segment base: UInt64) throws -> Int64? {
        if let known = firstEventTimes.withLock({ $0[base] }) { return known }
        let reader = journal.reader(at: JournalPosition(segment: base, offset: UInt64(JournalFormat.segmentHeaderSize)), sequence: base)
        for _ in 0..<4 {
            guard let record = try reader.next() else { return nil }
            if record.type == .event, let event = try? Event(decoding: record.payload) {
                firstEventTimes.withLock { $0[base] = event.receivedAt.milliseconds }
                return event.receivedAt.milliseconds
            }
        }
        return nil
    }
}
