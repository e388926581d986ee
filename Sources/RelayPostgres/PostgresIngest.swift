import Logging
import NIOCore
import PostgresNIO
import RelayCore
import Synchronization

/// Requests waiting for a commit, taken by one flusher that runs on one event loop with a
/// connection of its own (outside the pool): it takes what is queued (up to `maxBatch` events)
/// and commits it in one transaction, so concurrent requests share commits (group commit) with
/// no added wait. No step of a commit goes through the concurrency pool: the statements are sent
/// and their answers handled on the connection's loop, which then completes the requests (the
/// ingest listener answers on its own loops, so a request on this loop is answered without a
/// thread hop). Only making a missing day's partition is an `async` call through the pool.
///
/// One flusher, not several: while a commit is in flight the next batch gathers, and fewer,
/// larger commits cost the database less (measured with `scripts/bench --store postgres` on 2
/// cores: one flusher acknowledged more at 64 connections than two or four, with a third of the
/// commits per request).
final class IngestBatcher: Sendable {
    struct Request: Sendable {
        let candidates: [IngestCandidate]
        let completion: @Sendable (Result<[IngestOutcome], IngestError>) -> Void
    }

    struct State {
        var queue: [Request] = []
        var queuedEvents = 0
        var flushing = false
        var stopped = false
    }

    let state = Mutex(State())
    /// The loop the flusher and its connection run on.
    let loop: any EventLoop
    /// The flusher's connection, once made (touched only on `loop`).
    let connection: NIOLoopBoundBox<PostgresConnection?>
    let configuration: PostgresConnection.Configuration
    static let maxBatch = 500
    /// Events waiting beyond which requests are refused (503) rather than queued.
    static let maxQueued = 20_000

    init(loop: any EventLoop, configuration: PostgresConnection.Configuration) {
        self.loop = loop
        self.configuration = configuration
        connection = NIOLoopBoundBox.makeEmptyBox(valueType: PostgresConnection.self, eventLoop: loop)
    }
}

/// One batch's commit: answered once, by its result or by its deadline, whichever comes first.
/// Everything here runs on the batcher's loop.
private final class IngestFlush: Sendable {
    let requests: [IngestBatcher.Request]
    let candidates: [IngestCandidate]
    let answered: NIOLoopBoundBox<Bool>

    init(_ requests: [IngestBatcher.Request], loop: any EventLoop) {
        self.requests = requests
        candidates = requests.flatMap(\.candidates)
        answered = NIOLoopBoundBox(false, eventLoop: loop)
    }
}

extension PostgresStore: IngestStore {
    public func store(_ candidates: [IngestCandidate], completion: @escaping @Sendable (Result<[IngestOutcome], IngestError>) -> Void) {
        if candidates.isEmpty { return completion(.success([])) }
        let start = ingest.state.withLock { state -> Bool? in
            guard state.queuedEvents + candidates.count <= IngestBatcher.maxQueued || state.queue.isEmpty else { return nil }
            state.queue.append(IngestBatcher.Request(candidates: candidates, completion: completion))
            state.queuedEvents += candidates.count
            guard !state.flushing else { return false }
            state.flushing = true
            return true
        }
        switch start {
        case nil: completion(.failure(IngestError(.overloaded, "too many events are waiting for the database; retry later")))
        case true?: ingest.loop.execute { self.flushNext() }
        case false?: break
        }
    }

    /// Closes the flusher's connection; requests from now on are refused (503).
    func stopIngest() {
        ingest.state.withLock { $0.stopped = true }
        ingest.loop.execute { self.dropIngestConnection() }
    }

    /// Closes the flusher's connection, if any; the next batch connects again (on the loop).
    private func dropIngestConnection() {
        let connection = ingest.connection.value
        ingest.connection.value = nil
        connection?.close().whenComplete { _ in }
    }

    /// Commits the next batch of what is queued, or ends the flusher when nothing is (on the loop).
    private func flushNext() {
        let (taken, stopped) = ingest.state.withLock { state -> ([IngestBatcher.Request], Bool) in
            var taken: [IngestBatcher.Request] = []
            var events = 0
            while let next = state.queue.first, taken.isEmpty || events + next.candidates.count <= IngestBatcher.maxBatch {
                taken.append(state.queue.removeFirst())
                events += next.candidates.count
            }
            state.queuedEvents -= events
            if taken.isEmpty { state.flushing = false }
            return (taken, state.stopped)
        }
        if taken.isEmpty { return }
        let flush = IngestFlush(taken, loop: ingest.loop)
        if stopped { return finish(flush, .failure(IngestError(.unavailable, "the relay is stopping; retry later"))) }
        // The call limit covers the whole commit: connecting, making a day's partition, the
        // statements. Past it the outcome is unknown, so the connection is closed (the server
        // rolls back what it has not committed) and the batch answered 503.
        let deadline = ingest.loop.scheduleTask(in: TimeAmount(callLimit)) {
            guard !flush.answered.value else { return }
            self.dropIngestConnection()
            self.finish(flush, .failure(PostgresStoreError("PostgreSQL did not answer an ingest commit within \(self.callLimit)")))
        }
        commit(flush, retried: false) { result in
            deadline.cancel()
            self.finish(flush, result)
        }
    }

    /// Answers every request of `flush` (once), then goes on with the next batch.
    private func finish(_ flush: IngestFlush, _ commitResult: Result<[IngestOutcome], any Error>) {
        guard !flush.answered.value else { return }
        flush.answered.value = true
        let result: Result<[IngestOutcome], IngestError> = commitResult.mapError { error in
            if let error = error as? IngestError { return error }
            // Failed, or its outcome is unknown (the deadline passed): either way the provider
            // retries, and a retry of a committed event is a de-duplicated 200.
            logger.error("cannot store events in PostgreSQL", metadata: ["error": "\(String(reflecting: error))"])
            return IngestError(.unavailable, "the database did not confirm the write; retry later")
        }
        // Only new deliveries are work for the instances; an event routed nowhere wakes nobody.
        if case .success(let outcomes) = result, zip(flush.candidates, outcomes).contains(where: { candidate, outcome in
            if case .stored = outcome { !candidate.decision.destinations.isEmpty } else { false }
        }) {
            workSignal.signal()
            wakeUps.request(self)
        }
        var offset = 0
        for request in flush.requests {
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
        flushNext()
    }

    /// Commits `flush`'s candidates on the flusher's connection, after making sure the
    /// partitions of their days exist; if one was dropped meanwhile (retention, for an event
    /// stamped that long ago), once more after creating it again. `done` runs on the loop.
    private func commit(_ flush: IngestFlush, retried: Bool, done: @escaping @Sendable (Result<[IngestOutcome], any Error>) -> Void) {
        let loop = ingest.loop
        let days = Set(flush.candidates.map { PostgresStore.day(of: $0.event.receivedAt.milliseconds) })
        if !knownDays.withLock({ days.isSubset(of: $0) }) {
            let made = loop.makePromise(of: Void.self)
            made.completeWithTask { try await self.ensureDays(days) }
            made.futureResult.whenComplete { result in
                guard !flush.answered.value else { return }
                switch result {
                case .success: self.commit(flush, retried: retried, done: done)
                case .failure(let error): done(.failure(error))
                }
            }
            return
        }
        let statement: IngestStatement
        do { statement = try IngestStatement(flush.candidates) } catch { return done(.failure(error)) }
        withIngestConnection { connected in
            guard !flush.answered.value else { return }
            let connection: PostgresConnection
            switch connected {
            case .success(let made): connection = made
            case .failure(let error): return done(.failure(error))
            }
            // In an explicit transaction: its COMMIT is answered only once the commit is
            // durable. A lone statement (an implicit transaction) has its rows complete before
            // PostgreSQL commits it at the protocol's Sync, so its answer could come before the
            // commit. BEGIN, the insert and COMMIT are queued on the connection at once:
            // postgres-nio sends each as the one before it completes. A failed statement aborts
            // the transaction, and the COMMIT after it then rolls back (its tag says ROLLBACK):
            // the batch is answered with the statement's error. READ COMMITTED whatever the
            // server's default: relay_ingest's lookup relies on each statement's new snapshot.
            let answers = [
                connection.query("BEGIN ISOLATION LEVEL READ COMMITTED", logger: self.logger),
                connection.query(statement.query, logger: self.logger),
                connection.query("COMMIT", logger: self.logger),
            ]
            EventLoopFuture.whenAllComplete(answers, on: loop).whenSuccess { results in
                guard !flush.answered.value else { return }
                var failure: (any Error)?
                for case .failure(let error) in results { failure = failure ?? error }
                if let failure {
                    // A statement's error leaves the connection usable; anything else (the
                    // connection broke) has the next batch connect again.
                    if (failure as? PSQLError)?.serverInfo == nil { self.dropIngestConnection() }
                    if !retried, (failure as? PSQLError)?.serverInfo?[.sqlState] == "23514" {
                        self.forgetDays(days)
                        return self.commit(flush, retried: true, done: done)
                    }
                    return done(.failure(failure))
                }
                guard case .success(let committed) = results[2], committed.metadata.command == "COMMIT", case .success(let found) = results[1] else {
                    return done(.failure(PostgresStoreError("PostgreSQL did not commit an ingest batch")))
                }
                done(Result { try statement.outcomes(Array(found)) })
            }
        }
    }

    /// The flusher's connection, connecting first when there is none (on the loop).
    private func withIngestConnection(_ body: @escaping @Sendable (Result<PostgresConnection, any Error>) -> Void) {
        if let connection = ingest.connection.value, !connection.isClosed { return body(.success(connection)) }
        ingest.connection.value = nil
        let connecting = PostgresConnection.connect(on: ingest.loop, configuration: ingest.configuration, id: 0, logger: logger)
        connecting.whenComplete { result in
            if case .success(let connection) = result {
                if self.ingest.connection.value == nil && !self.ingest.state.withLock({ $0.stopped }) {
                    self.ingest.connection.value = connection
                } else {
                    connection.close().whenComplete { _ in }
                }
            }
            body(result)
        }
    }
}

/// One batch's `relay_ingest` statement, with what is needed to read its answer.
private struct IngestStatement: Sendable {
    let query: PostgresQuery
    let candidates: [IngestCandidate]
    /// For a candidate whose key an earlier candidate of the batch has, that candidate's index.
    let duplicateOf: [Int: Int]
    /// Indexes of the candidates in the statement.
    let batch: [Int]
    /// Positions in `batch` of the keyed candidates, with their (text) key.
    let keyed: [(position: Int, key: String)]

    /// The statement that stores `candidates` in one go: the de-duplication keys (by source and
    /// provider event id), the new events with their routing decisions, and their deliveries.
    init(_ candidates: [IngestCandidate]) throws {
        // Within the batch, a key's first candidate is the one to store.
        var first: [String: Int] = [:]
        var duplicateOf: [Int: Int] = [:]
        var keyed = [Bool](repeating: false, count: candidates.count)
        for (index, candidate) in candidates.enumerated() where !candidate.event.providerEventID.isEmpty {
            let key = PostgresStore.key(candidate.event.source, candidate.event.providerEventID)
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
        query = """
            SELECT * FROM relay_ingest(
                \(events.map(\.id))::text[], \(events.map(\.receivedAt.milliseconds))::bigint[], \(sources)::text[],
                \(events.map { PostgresStore.text($0.provider) })::text[], \(events.map { PostgresStore.text($0.type) })::text[],
                \(events.map { PostgresStore.text($0.status) })::text[], \(providerIDs)::text[], \(events.map { ByteBuffer(bytes: $0.encoded()) })::bytea[],
                \(batch.map { ByteBuffer(bytes: candidates[$0].decision.encoded()) })::bytea[], \(batch.map { keyed[$0] })::boolean[],
                \(deliveries.map(\.0))::text[], \(deliveries.map(\.1))::text[], \(deliveries.map(\.2))::text[])
            """
        self.candidates = candidates
        self.duplicateOf = duplicateOf
        self.batch = batch
        self.keyed = batch.indices.filter { keyed[batch[$0]] }.map { ($0, PostgresStore.key(sources[$0], providerIDs[$0])) }
    }

    /// One outcome per candidate, from the rows `relay_ingest` answered.
    func outcomes(_ rows: [PostgresRow]) throws -> [IngestOutcome] {
        var existing: [String: String] = [:]
        for row in rows {
            let (source, providerID, id) = try row.decode((String, String, String).self)
            existing[PostgresStore.key(source, providerID)] = id
        }
        // A key that was there already: the id of the event stored under it.
        var earlierID: [Int: String] = [:]
        for (position, key) in keyed {
            // relay_ingest fails (and rolls back) rather than answer without a keyed candidate's row.
            guard let id = existing[key] else {
                throw PostgresStoreError("relay_ingest answered without a de-duplication key it stored or found")
            }
            if id != candidates[batch[position]].event.id { earlierID[batch[position]] = id }
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
