import Logging
import NIOCore
import PostgresNIO
import RelayCore

/// The event store and attempt recorder on PostgreSQL. A reference's `sequence` is the event's
/// `seq`; cursors are sequences. Exact-match filters (id, source, provider, status, time range)
/// run in SQL; type and product globs and the delivery state are applied to each row read, a
/// chunk at a time, newest first.
extension PostgresStore: EventStore, AttemptRecorder {
    /// One stored event as read back.
    struct Row {
        var sequence: UInt64
        var event: Event
        var decision: RoutingDecision
        var deliveries: [(destination: String, state: DeliveryState)]

        var reference: EventReference { PostgresStore.reference(Int64(sequence), receivedAt: event.receivedAt.milliseconds) }
        var summary: EventSummary { EventSummary(reference: reference, event: event, decision: decision, deliveries: deliveries) }
    }

    static let chunk = 200

    /// Up to `chunk` events with a sequence below `before` (and at most `through`) matching the
    /// filter's exact fields, newest first, with their delivery states.
    func rows(_ filter: EventFilter, before: UInt64, through: UInt64 = UInt64(Int64.max)) async throws -> [Row] {
        try await bounded("a read of events") { try await self.readRows(filter, before: before, through: through) }
    }

    private func readRows(_ filter: EventFilter, before: UInt64, through: UInt64) async throws -> [Row] {
        let upper = Int64(clamping: min(before == 0 ? 0 : before - 1, through))
        let since = filter.since?.milliseconds ?? Int64.min
        let until = filter.until?.milliseconds ?? Int64.max
        // As the columns hold them (see `PostgresStore.text`).
        let (ids, sources) = (filter.ids.map(PostgresStore.text), filter.sources.map(PostgresStore.text))
        let (providers, statuses) = (filter.providers.map(PostgresStore.text), filter.statuses.map(PostgresStore.text))
        let result = try await client.query("""
            SELECT seq, event, decision FROM relay_event
            WHERE seq <= \(upper)
              AND (cardinality(\(ids)::text[]) = 0 OR id = ANY(\(ids)::text[]))
              AND (cardinality(\(sources)::text[]) = 0 OR source = ANY(\(sources)::text[]))
              AND (cardinality(\(providers)::text[]) = 0 OR provider = ANY(\(providers)::text[]))
              AND (cardinality(\(statuses)::text[]) = 0 OR status = ANY(\(statuses)::text[]))
              AND received_at >= \(since) AND received_at < \(until)
            ORDER BY seq DESC LIMIT \(Self.chunk)
            """, logger: logger)
        var rows: [Row] = []
        for try await (seq, event, decision) in result.decode((Int64, ByteBuffer, ByteBuffer).self) {
            rows.append(Row(
                sequence: UInt64(seq), event: try Event(decoding: Array(buffer: event)),
                decision: try RoutingDecision(decoding: Array(buffer: decision)), deliveries: []
            ))
        }
        guard !rows.isEmpty else { return [] }
        let states = try await deliveryStates(rows.map { Int64($0.sequence) })
        for index in rows.indices {
            let known = states[rows[index].sequence] ?? [:]
            rows[index].deliveries = rows[index].decision.destinations.map { ($0, known[$0] ?? .pending) }
        }
        return rows
    }

    private func deliveryStates(_ sequences: [Int64]) async throws -> [UInt64: [String: DeliveryState]] {
        var states: [UInt64: [String: DeliveryState]] = [:]
        let result = try await client.query(
            "SELECT event_seq, destination, state FROM relay_delivery WHERE event_seq = ANY(\(sequences)::bigint[])", logger: logger
        )
        for try await (seq, destination, state) in result.decode((Int64, String, String).self) {
            states[UInt64(seq), default: [:]][destination] = DeliveryState(rawValue: state) ?? .pending
        }
        return states
    }

    /// Every event matching `filter` (its delivery state included) below `before` and up to
    /// `through`, newest first, until `visit` returns false.
    func scan(_ filter: EventFilter, before: UInt64, through: UInt64 = UInt64(Int64.max), _ visit: (Row) async throws -> Bool) async throws {
        var before = before
        while true {
            let rows = try await rows(filter, before: before, through: through)
            for row in rows {
                guard filter.matches(row.event) else { continue }
                if let wanted = filter.deliveryState, row.summary.deliveryState != wanted { continue }
                guard try await visit(row) else { return }
            }
            guard rows.count == Self.chunk, let last = rows.last else { return }
            before = last.sequence
        }
    }

    private static func cursor(_ text: String?) throws(FilterError) -> UInt64 {
        guard let text else { return UInt64(Int64.max) }
        return try EventFilter.parseCursor(text)
    }

    public func page(filter: EventFilter, cursor: String?, limit: Int) async throws -> EventPage {
        let limit = max(1, limit)
        var found: [Row] = []
        try await scan(filter, before: try Self.cursor(cursor)) { row in
            found.append(row)
            return found.count <= limit
        }
        let page = found.prefix(limit)
        return EventPage(events: page.map(\.summary), nextCursor: found.count > limit ? page.last.map { String($0.sequence) } : nil)
    }

    public func detail(id: String) async throws -> EventDetail? {
        var filter = EventFilter()
        filter.ids = [id]
        guard let row = try await rows(filter, before: UInt64(Int64.max)).first else { return nil }
        let attempts = try await bounded("a read of attempts") {
            var attempts: [DeliveryRecord] = []
            let result = try await self.client.query(
                "SELECT record FROM relay_attempt WHERE event_seq = \(Int64(row.sequence)) AND received_at = \(row.event.receivedAt.milliseconds) ORDER BY id", logger: self.logger
            )
            for try await record in result.decode(ByteBuffer.self) { attempts.append(try DeliveryRecord(decoding: Array(buffer: record))) }
            return attempts
        }
        return EventDetail(summary: row.summary, attempts: attempts)
    }

    public func deliveries(filter: EventFilter, state wanted: DeliveryState?, destinations: Set<String>, cursor: String?, limit: Int) async throws -> DeliveryPage {
        var selection = filter
        selection.deliveryState = nil
        var builder = DeliveryPageBuilder(state: wanted, destinations: destinations, limit: limit)
        try await scan(selection, before: try Self.cursor(cursor)) { row in
            builder.add(row.reference, id: row.event.id, receivedAt: row.event.receivedAt, deliveries: row.deliveries)
        }
        return builder.page
    }

    public func matches(filter: EventFilter, through mark: UInt64, prepare: @escaping @Sendable (Event) -> PreparedRouting) -> AsyncThrowingStream<StoredEventMatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: StoredEventMatch.self, bufferingPolicy: .bufferingOldest(1_000))
        let task = Task {
            do {
                try await scan(filter, before: UInt64(Int64.max), through: mark) { row in
                    let match = StoredEventMatch(
                        reference: row.reference, id: row.event.id, receivedAt: row.event.receivedAt, decision: row.decision,
                        deliveries: row.deliveries, prepared: prepare(row.event)
                    )
                    // A full buffer waits for the reader; a reader that stopped ends the scan.
                    while true {
                        switch continuation.yield(match) {
                        case .enqueued: return true
                        case .terminated: return false
                        case .dropped: try await Task.sleep(for: .milliseconds(1))
                        @unknown default: return false
                        }
                    }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    public func event(_ reference: EventReference) async throws -> Event {
        // With its receive time, the event's own partition only.
        let query: PostgresQuery = if let receivedAt = Self.receivedAt(reference) {
            "SELECT event FROM relay_event WHERE seq = \(Int64(clamping: reference.sequence)) AND received_at = \(receivedAt)"
        } else {
            "SELECT event FROM relay_event WHERE seq = \(Int64(clamping: reference.sequence))"
        }
        guard let found = try await scalar(ByteBuffer.self, query) else { throw FilterError("event", "no event at sequence \(reference.sequence)") }
        return try Event(decoding: Array(buffer: found))
    }

    /// A reference to the event at `seq` received at `receivedAt`: the receive time (its
    /// partition) rides in the locator, flagged by `low = 1`.
    static func reference(_ seq: Int64, receivedAt: Int64) -> EventReference {
        EventReference(sequence: UInt64(clamping: seq), locator: .init(high: UInt64(bitPattern: receivedAt), low: 1))
    }

    /// The receive time a reference carries, if it carries one.
    static func receivedAt(_ reference: EventReference) -> Int64? {
        reference.locator.low == 1 ? Int64(bitPattern: reference.locator.high) : nil
    }

    public func mark() async throws -> UInt64 {
        UInt64(try await scalar(Int64.self, "SELECT coalesce(max(seq), 0) FROM relay_event") ?? 0)
    }

    // MARK: - AttemptRecorder

    public func record(_ records: [DeliveryRecord]) async throws {
        guard !records.isEmpty else { return }
        try await bounded("a write of attempts") { try await self.insert(records) }
    }

    private func insert(_ records: [DeliveryRecord]) async throws {
        try await client.withTransaction(logger: logger) { connection in try await self.insert(records, on: connection) }
    }

    /// Inserts `records` on `connection` (in the caller's transaction), and moves the deliveries
    /// whose state they change. Each goes to its event's partition (found by sequence).
    func insert(_ records: [DeliveryRecord], on connection: PostgresConnection) async throws {
        try await connection.query("""
            INSERT INTO relay_attempt (event_seq, received_at, destination, replay_id, record, at, outcome, duration_ms)
            SELECT r.event_seq, e.received_at, r.destination, r.replay_id, r.record, r.at, r.outcome, r.duration_ms FROM unnest(
                \(records.map { Int64(clamping: $0.eventSequence) })::bigint[], \(records.map(\.destination))::text[],
                \(records.map(\.replayID))::text[], \(records.map { ByteBuffer(bytes: $0.encoded()) })::bytea[], \(records.map(\.time.milliseconds))::bigint[],
                \(records.map { Int16($0.outcome.rawValue) })::smallint[], \(records.map { Int32(clamping: $0.durationMillis) })::integer[])
                WITH ORDINALITY AS r(event_seq, destination, replay_id, record, at, outcome, duration_ms, n)
            JOIN relay_event e ON e.seq = r.event_seq
            ORDER BY r.n
            """, logger: logger)
        // One change per delivery (an UPDATE applies only one row of its FROM to each row): the
        // last record's state, the highest attempt. Their order does not matter.
        var changes: [String: (record: DeliveryRecord, state: DeliveryState, attempt: Int)] = [:]
        for record in records {
            guard let state = deliveryState(after: record) else { continue }
            let key = "\(record.eventSequence)/\(record.destination)"
            changes[key] = (record, state, max(changes[key]?.attempt ?? 0, record.attempt))
        }
        guard !changes.isEmpty else { return }
        let rows = Array(changes.values)
        try await connection.query("""
            UPDATE relay_delivery d SET state = c.state, attempts = greatest(d.attempts, c.attempt)
            FROM unnest(\(rows.map { Int64(clamping: $0.record.eventSequence) })::bigint[], \(rows.map(\.record.destination))::text[],
                \(rows.map(\.state.rawValue))::text[], \(rows.map { Int32(clamping: $0.attempt) })::integer[]) AS c(event_seq, destination, state, attempt)
            WHERE d.event_seq = c.event_seq AND d.destination = c.destination
            """, logger: logger)
    }
}
