import Logging
import NIOCore
import PostgresNIO
import RelayCore
import Synchronization

/// Requests waiting for a commit, taken by one flusher: it takes what is queued (up to
/// `maxBatch` events) and commits it in one transaction, so concurrent requests share commits
/// (group commit) with no added wait. One flusher, not several: while a commit is in flight the
/// next batch gathers, and fewer, larger commits cost the database less (measured with
/// `scripts/bench --store postgres` on 2 cores: one flusher acknowledged more at 64 connections
/// than two or four, with a third of the commits per request).
final class IngestBatcher: Sendable {
    struct Request: Sendable {
        let candidates: [IngestCandidate]
        let completion: @Sendable (Result<[IngestOutcome], IngestError>) -> Void
    }

    struct State {
        var queue: [Request] = []
        var queuedEvents = 0
        var flushers = 0
    }

    let state = Mutex(State())
    static let maxFlushers = 1
    static let maxBatch = 500
    /// Events waiting beyond which requests are refused (503) rather than queued.
    static let maxQueued = 20_000
}

extension PostgresStore: IngestStore {
    public func store(_ candidates: [IngestCandidate], completion: @escaping @Sendable (Result<[IngestOutcome], IngestError>) -> Void) {
        if candidates.isEmpty { return completion(.success([])) }
        let start = ingest.state.withLock { state -> Bool? in
            guard state.queuedEvents + candidates.count <= IngestBatcher.maxQueued || state.queue.isEmpty else { return nil }
            state.queue.append(IngestBatcher.Request(candidates: candidates, completion: completion))
            state.queuedEvents += candidates.count
            guard state.flushers < IngestBatcher.maxFlushers else { return false }
            state.flushers += 1
            return true
        }
        switch start {
        case nil: completion(.failure(IngestError(.overloaded, "too many events are waiting for the database; retry later")))
        case true?: Task { await self.flush() }
        case false?: break
        }
    }

    /// Commits queued requests until the queue is empty.
    private func flush() async {
        while true {
            let batch = ingest.state.withLock { state -> [IngestBatcher.Request] in
                var taken: [IngestBatcher.Request] = []
                var events = 0
                while let next = state.queue.first, taken.isEmpty || events + next.candidates.count <= IngestBatcher.maxBatch {
                    taken.append(state.queue.removeFirst())
                    events += next.candidates.count
                }
                state.queuedEvents -= events
                if taken.isEmpty { state.flushers -= 1 }
                return taken
            }
            if batch.isEmpty { return }
            let result: Result<[IngestOutcome], IngestError>
            do {
                let candidates = batch.flatMap(\.candidates)
                result = .success(try await bounded("an ingest commit") { try await self.commitCreatingDays(candidates) })
            } catch let error as IngestError {
                result = .failure(error)
            } catch {
                // Failed, or its outcome is unknown (the deadline passed): either way the provider
                // retries, and a retry of a committed event is a de-duplicated 200.
                logger.error("cannot store events in PostgreSQL", metadata: ["error": "\(String(reflecting: error))"])
                result = .failure(IngestError(.unavailable, "the database did not confirm the write; retry later"))
            }
            // Only new deliveries are work for the instances; an event routed nowhere wakes nobody.
            if case .success(let outcomes) = result, zip(batch.flatMap(\.candidates), outcomes).contains(where: { candidate, outcome in
                if case .stored = outcome { !candidate.decision.destinations.isEmpty } else { false }
            }) {
                workSignal.signal()
                wakeUps.request(self)
            }
            var offset = 0
            for request in batch {
                let count = request.candidates.count
                request.completion(result.map { Array($0[offset..<offset + count]) })
                offset += count
            }
            // The database failed this commit (down, or no answer within the call limit): what
            // queued behind it is refused now rather than after a commit of its own, so every
            // request gets its 503 within one call limit. The next request tries again.
            if case .failure(let error) = result, error.code == .unavailable {
                let waiting = ingest.state.withLock { state -> [IngestBatcher.Request] in
                    defer { state.queue = []; state.queuedEvents = 0 }
                    return state.queue
                }
                for request in waiting { request.completion(.failure(error)) }
            }
        }
    }

    /// `commit`, after making sure the partitions of the candidates' days exist; if one was
    /// dropped meanwhile (retention, for an event stamped that long ago), once more after
    /// creating it again.
    private func commitCreatingDays(_ candidates: [IngestCandidate]) async throws -> [IngestOutcome] {
        let days = Set(candidates.map { PostgresStore.day(of: $0.event.receivedAt.milliseconds) })
        try await ensureDays(days)
        do {
            return try await commit(candidates)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23514" {
            forgetDays(days)
            try await ensureDays(days)
            return try await commit(candidates)
        }
    }

    /// Stores `candidates` with one statement in one transaction: the de-duplication keys (by
    /// source and provider event id), the new events with their routing decisions, and their
    /// deliveries. Returns one outcome per candidate.
    func commit(_ candidates: [IngestCandidate]) async throws -> [IngestOutcome] {
        // Within the batch, a key's first candidate is the one to store.
        var first: [String: Int] = [:]
        var duplicateOf: [Int: Int] = [:]
        var keyed = [Bool](repeating: false, count: candidates.count)
        for (index, candidate) in candidates.enumerated() where !candidate.event.providerEventID.isEmpty {
            let key = Self.key(candidate.event.source, candidate.event.providerEventID)
            if let earlier = first[key] { duplicateOf[index] = earlier } else { first[key] = index; keyed[index] = true }
        }
        let batch = candidates.indices.filter { duplicateOf[$0] == nil }
        let events = batch.map { candidates[$0].event }
        // Text columns as PostgreSQL can hold them (no NUL); the event itself is stored as it came.
        let sources = events.map { PostgresStore.text($0.source) }, providerIDs = events.map { PostgresStore.text($0.providerEventID) }
        // A delivery's ordering key ('' for none: keys are never empty).
        let deliveries = batch.flatMap { index in
            candidates[index].decision.destinations.map { (candidates[index].event.id, $0, candidates[index].decision.orderingKeys[$0].map(PostgresStore.text) ?? "") }
        }
        // relay_ingest (PostgresSchema, version 10) stores the batch with one statement: ON
        // CONFLICT DO NOTHING waits for a concurrent uncommitted insert of the same key, so of
        // copies arriving at once on any instance exactly one is stored. Keys are inserted in a
        // stable order, so concurrent statements lock them in the same order. An event goes in
        // only if its key did (or it has none); its deliveries join it in its own partition.
        // It answers the event id under each keyed candidate's key: its own id, stored; another,
        // a duplicate of an event committed before (the insert waited for it).
        let insert: PostgresQuery = """
            SELECT * FROM relay_ingest(
                \(events.map(\.id))::text[], \(events.map(\.receivedAt.milliseconds))::bigint[], \(sources)::text[],
                \(events.map { PostgresStore.text($0.provider) })::text[], \(events.map { PostgresStore.text($0.type) })::text[],
                \(events.map { PostgresStore.text($0.status) })::text[], \(providerIDs)::text[], \(events.map { ByteBuffer(bytes: $0.encoded()) })::bytea[],
                \(batch.map { ByteBuffer(bytes: candidates[$0].decision.encoded()) })::bytea[], \(batch.map { keyed[$0] })::boolean[],
                \(deliveries.map(\.0))::text[], \(deliveries.map(\.1))::text[], \(deliveries.map(\.2))::text[])
            """
        // Positions in `batch` (and so in `sources` and `providerIDs`) of the keyed candidates.
        let keyedPositions = batch.indices.filter { keyed[batch[$0]] }
        // In an explicit transaction: its COMMIT is answered only once the commit is durable.
        // A lone statement (an implicit transaction) has its rows complete before PostgreSQL
        // commits it at the protocol's Sync, so its answer could come before the commit.
        // BEGIN, the insert and COMMIT are queued on the connection at once:
        // postgres-nio sends each as the one before it completes, from the connection's event
        // loop, so a batch costs one wait here and not a hop through the concurrency pool per
        // statement. A failed statement aborts the transaction, and the COMMIT after it then
        // rolls back (its tag says ROLLBACK): the batch is answered with the statement's error.
        let logger = self.logger
        let rows: [PostgresRow] = try await client.withConnection { connection in
            typealias Answer = EventLoopFuture<PostgresQueryResult>
            // READ COMMITTED whatever the server's default: relay_ingest's lookup relies on
            // each statement's new snapshot.
            let begin: Answer = connection.query("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger)
            let inserted: Answer = connection.query(insert, logger: logger)
            let commit: Answer = connection.query("COMMIT", logger: logger)
            // Every answer is awaited, so the connection goes back to the pool only with the
            // transaction over; the first failure is the batch's.
            var failure: (any Error)?
            func answer(_ future: EventLoopFuture<PostgresQueryResult>) async -> PostgresQueryResult? {
                do { return try await future.get() } catch { failure = failure ?? error; return nil }
            }
            _ = await answer(begin)
            let found = await answer(inserted)
            let committed = await answer(commit)
            if let failure { throw failure }
            guard committed?.metadata.command == "COMMIT" else { throw PostgresStoreError("PostgreSQL did not commit an ingest batch") }
            return found.map(Array.init) ?? []
        }
        var existing: [String: String] = [:]
        for row in rows {
            let (source, providerID, id) = try row.decode((String, String, String).self)
            existing[Self.key(source, providerID)] = id
        }
        // A key that was there already: the id of the event stored under it.
        var earlierID: [Int: String] = [:]
        for position in keyedPositions {
            // relay_ingest fails (and rolls back) rather than answer without a keyed candidate's row.
            guard let id = existing[Self.key(sources[position], providerIDs[position])] else {
                throw PostgresStoreError("relay_ingest answered without a de-duplication key it stored or found")
            }
            if id != events[position].id { earlierID[batch[position]] = id }
        }
        return candidates.indices.map { index in
            if let earlier = duplicateOf[index] {
                return .duplicate(id: earlierID[earlier] ?? candidates[earlier].event.id)
            } else if let id = earlierID[index] {
                return .duplicate(id: id)
            } else {
                return .stored(id: candidates[index].event.id)
            }
        }
    }
}

extension PostgresStore {
    /// A de-duplication key (source, provider event id) as one dictionary key.
    static func key(_ source: String, _ providerEventID: String) -> String {
        source + "\u{0}" + providerEventID
    }

    /// `value` as a PostgreSQL text value: PostgreSQL text cannot hold NUL, which a JSON string
    /// may (`"\u0000"`), so each becomes U+FFFD. Used for the columns that index events and
    /// for the filters that match them; the event's own bytes are stored untouched.
    static func text(_ value: String) -> String {
        value.utf8.contains(0) ? String(value.map { $0 == "\u{0}" ? "\u{FFFD}" : $0 }) : value
    }
}
