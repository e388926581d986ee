import Logging
import NIOCore
import PostgresNIO
import RelayCore
import Synchronization

/// Requests waiting for a commit, taken by a few flushers: each takes what is queued (up to
/// `maxBatch` events) and commits it in one transaction, so concurrent requests share commits
/// (group commit) with no added wait.
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
    static let maxFlushers = 4
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
            if case .success(let outcomes) = result, outcomes.contains(where: { if case .stored = $0 { true } else { false } }) {
                workSignal.signal()
                wakeUps.request(self)
            }
            var offset = 0
            for request in batch {
                let count = request.candidates.count
                request.completion(result.map { Array($0[offset..<offset + count]) })
                offset += count
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

    /// Stores `candidates` in one transaction: de-duplicated by (source, provider event id), each
    /// new event with its routing decision and its deliveries. Returns one outcome per candidate.
    func commit(_ candidates: [IngestCandidate]) async throws -> [IngestOutcome] {
        // Within the batch, a key's first candidate is the one to store.
        var first: [String: Int] = [:]
        var duplicateOf: [Int: Int] = [:]
        for (index, candidate) in candidates.enumerated() where !candidate.event.providerEventID.isEmpty {
            let key = candidate.event.source + "\u{0}" + candidate.event.providerEventID
            if let earlier = first[key] { duplicateOf[index] = earlier } else { first[key] = index }
        }
        // Keys in a stable order, so concurrent transactions lock them in the same order.
        let keyed = first.values.sorted { (candidates[$0].event.source, candidates[$0].event.providerEventID) < (candidates[$1].event.source, candidates[$1].event.providerEventID) }
        return try await client.withTransaction(logger: logger) { connection in
            var earlierID: [Int: String] = [:]
            if !keyed.isEmpty {
                let sources = keyed.map { candidates[$0].event.source }
                let providerIDs = keyed.map { candidates[$0].event.providerEventID }
                let ids = keyed.map { candidates[$0].event.id }
                let times = keyed.map { candidates[$0].event.receivedAt.milliseconds }
                // ON CONFLICT DO NOTHING waits for a concurrent uncommitted insert of the same key,
                // so of copies arriving at once on any instance exactly one is stored.
                var inserted: Set<String> = []
                let rows = try await connection.query("""
                    INSERT INTO relay_dedup (source, provider_event_id, event_id, received_at)
                    SELECT * FROM unnest(\(sources)::text[], \(providerIDs)::text[], \(ids)::text[], \(times)::bigint[])
                    ON CONFLICT DO NOTHING RETURNING event_id
                    """, logger: logger)
                for try await id in rows.decode(String.self) { inserted.insert(id) }
                let conflicting = keyed.filter { !inserted.contains(candidates[$0].event.id) }
                if !conflicting.isEmpty {
                    var existing: [String: String] = [:]
                    let rows = try await connection.query("""
                        SELECT d.source, d.provider_event_id, d.event_id FROM relay_dedup d
                        JOIN unnest(\(conflicting.map { candidates[$0].event.source })::text[], \(conflicting.map { candidates[$0].event.providerEventID })::text[]) AS k(source, provider_event_id)
                        ON d.source = k.source AND d.provider_event_id = k.provider_event_id
                        """, logger: logger)
                    for try await (source, providerID, id) in rows.decode((String, String, String).self) { existing[source + "\u{0}" + providerID] = id }
                    for index in conflicting {
                        let key = candidates[index].event.source + "\u{0}" + candidates[index].event.providerEventID
                        guard let id = existing[key] else { throw PostgresStoreError("a de-duplication row vanished during the transaction") }
                        earlierID[index] = id
                    }
                }
            }
            var outcomes: [IngestOutcome] = []
            var fresh: [IngestCandidate] = []
            for (index, candidate) in candidates.enumerated() {
                if let earlier = duplicateOf[index] {
                    outcomes.append(.duplicate(id: earlierID[earlier] ?? candidates[earlier].event.id))
                } else if let id = earlierID[index] {
                    outcomes.append(.duplicate(id: id))
                } else {
                    outcomes.append(.stored(id: candidate.event.id))
                    fresh.append(candidate)
                }
            }
            guard !fresh.isEmpty else { return outcomes }
            let events = fresh.map(\.event)
            try await connection.query("""
                INSERT INTO relay_event (id, received_at, source, provider, type, status, provider_event_id, event, decision)
                SELECT * FROM unnest(
                    \(events.map(\.id))::text[], \(events.map(\.receivedAt.milliseconds))::bigint[], \(events.map(\.source))::text[],
                    \(events.map(\.provider))::text[], \(events.map(\.type))::text[], \(events.map(\.status))::text[],
                    \(events.map(\.providerEventID))::text[], \(events.map { ByteBuffer(bytes: $0.encoded()) })::bytea[],
                    \(fresh.map { ByteBuffer(bytes: $0.decision.encoded()) })::bytea[])
                """, logger: logger)
            let deliveries = fresh.flatMap { candidate in candidate.decision.destinations.map { (candidate.event.id, $0, candidate.event.receivedAt.milliseconds) } }
            if !deliveries.isEmpty {
                // Joined on (id, received_at): the event's own partition only.
                try await connection.query("""
                    INSERT INTO relay_delivery (event_seq, received_at, destination, due_at)
                    SELECT e.seq, e.received_at, d.destination, d.received_at
                    FROM unnest(\(deliveries.map(\.0))::text[], \(deliveries.map(\.1))::text[], \(deliveries.map(\.2))::bigint[]) AS d(event_id, destination, received_at)
                    JOIN relay_event e ON e.id = d.event_id AND e.received_at = d.received_at
                    """, logger: logger)
            }
            return outcomes
        }
    }
}
