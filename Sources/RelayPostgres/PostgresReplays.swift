import Foundation
import Logging
import NIOCore
import PostgresNIO
import RelayCore

/// Replays in the database: a replay and its items are saved as it starts, owned by the
/// instance that started it; each attempt updates its item in the same transaction as the
/// attempt's record. When the owner stops (its heartbeat is older than the timeout, or it left
/// cleanly), another instance takes the replay over with what is unfinished; a late result
/// from an owner that lost the replay is recorded and tells that owner to stop running it.
extension PostgresDeliveryStore {
    /// Items saved per statement.
    static let replayChunk = 5_000

    public func saveReplay(_ replay: StoredReplay) async throws {
        let chunks = max(1, (replay.remaining.count + Self.replayChunk - 1) / Self.replayChunk)
        let (store, instance, logger) = (self.store, self.instance, store.logger)
        try await withDeadline(store.callLimit * chunks, "PostgreSQL did not save the replay within \(store.callLimit * chunks)") {
            try await store.client.withTransaction(logger: logger) { connection in
                try await connection.query("""
                    INSERT INTO relay_replay (id, started_at, matched_events, deliveries, concurrency, rate_per_s, owner)
                    VALUES (\(replay.id), \(replay.startedAt.milliseconds), \(Int32(clamping: replay.matchedEvents)), \(Int32(clamping: replay.total)),
                        \(Int32(clamping: replay.concurrency)), \(replay.ratePerSecond), \(instance))
                    """, logger: logger)
                var start = 0
                while start < replay.remaining.count {
                    let items = replay.remaining[start..<min(start + Self.replayChunk, replay.remaining.count)]
                    try await connection.query("""
                        INSERT INTO relay_replay_item (replay_id, position, event_seq, received_at, event_id, destination, ordering_key)
                        SELECT \(replay.id), position, event_seq, received_at, event_id, destination, nullif(ordering_key, '') FROM unnest(
                            \(items.map { Int32(clamping: $0.position) })::integer[],
                            \(items.map { Int64(clamping: $0.event.sequence) })::bigint[], \(items.map { PostgresStore.receivedAt($0.event) ?? 0 })::bigint[],
                            \(items.map(\.eventID))::text[], \(items.map(\.destination))::text[], \(items.map { $0.orderingKey.map(PostgresStore.text) ?? "" })::text[])
                            AS i(position, event_seq, received_at, event_id, destination, ordering_key)
                        """, logger: logger)
                    start += Self.replayChunk
                }
            }
        }
    }

    public func recordReplayAttempt(_ record: DeliveryRecord, position: Int, state: ReplayItemState) async -> Bool {
        do {
            let (store, instance, logger) = (self.store, self.instance, self.logger)
            let (owned, released) = try await store.bounded("a replay attempt") {
                try await store.client.withTransaction(logger: logger) { connection in
                    let owned = try await connection.query("""
                        UPDATE relay_replay_item i SET state = \(state.rawValue), attempts = greatest(i.attempts, \(Int32(clamping: record.attempt)))
                        FROM relay_replay r
                        WHERE i.replay_id = \(record.replayID) AND i.position = \(Int32(clamping: position)) AND r.id = i.replay_id AND r.owner = \(instance)
                        RETURNING 1
                        """, logger: logger).first(Int32.self) != nil
                    try await store.insert([record], on: connection)
                    // A retry of a dead delivery that held its key succeeded: the key moves on.
                    var released = false
                    if record.outcome == .succeeded {
                        released = try await connection.query(Self.releaseHold(ofEvent: record.eventSequence, record.destination), logger: logger).first(Int32.self) != nil
                    }
                    return (owned, released)
                }
            }
            if released { workMayBeDue() }
            return owned
        } catch {
            // Its item stays pending: whoever runs the replay next sends it again.
            logger.error("cannot record a replay attempt in the database", metadata: ["replay_id": "\(record.replayID)", "error": "\(String(reflecting: error))"])
            return true
        }
    }

    public func skipReplayItem(replayID: String, position: Int) async {
        do {
            try await execute("a skipped replay item", """
                UPDATE relay_replay_item SET state = 'skipped' WHERE replay_id = \(replayID) AND position = \(Int32(clamping: position))
                """)
        } catch {
            logger.warning("cannot record a skipped replay item", metadata: ["replay_id": "\(replayID)", "error": "\(String(reflecting: error))"])
        }
    }

    /// Records the end of a replay. If the database cannot take it now, it is tried again every
    /// `finishRetry` in the background until it can: while this instance lives it owns the
    /// replay, so no other instance would take it over and finish it (one that does after this
    /// instance is gone finds nothing left and finishes it then).
    public func finishReplay(id: String, at time: Timestamp) async {
        if await recordFinish(id: id, at: time, logFailure: true) { return }
        Task {
            for _ in 0..<Self.finishRetries {
                try? await Task.sleep(for: Self.finishRetry)
                if await self.recordFinish(id: id, at: time, logFailure: false) {
                    self.logger.info("recorded the end of a replay after the database came back", metadata: ["replay_id": "\(id)"])
                    return
                }
            }
            self.logger.error("gave up recording the end of a replay; it shows as running until this instance stops", metadata: ["replay_id": "\(id)"])
        }
    }

    static var finishRetry: Duration { .seconds(1) }
    /// An hour of tries.
    static var finishRetries: Int { 3_600 }

    private func recordFinish(id: String, at time: Timestamp, logFailure: Bool) async -> Bool {
        do {
            try await execute("the end of a replay", "UPDATE relay_replay SET finished_at = \(time.milliseconds) WHERE id = \(id) AND finished_at IS NULL")
            return true
        } catch {
            if logFailure {
                logger.warning("cannot record the end of a replay; trying again every second", metadata: ["replay_id": "\(id)", "error": "\(String(reflecting: error))"])
            }
            return false
        }
    }

    public func adoptReplays() async -> [StoredReplay] {
        do {
            let (store, instance, logger) = (self.store, self.instance, self.logger)
            let now = SystemClock().now().milliseconds
            let adopted = try await store.bounded("a take-over of replays") {
                // Row locks make two instances taking over at once agree: the second re-checks
                // the owner the first wrote, which is alive.
                var taken: [StoredReplay] = []
                let rows = try await store.client.query("""
                    UPDATE relay_replay r SET owner = \(instance)
                    WHERE r.finished_at IS NULL AND (r.owner IS NULL OR NOT EXISTS (
                        SELECT 1 FROM relay_instance i WHERE i.id = r.owner AND i.heartbeat_at > \(now - Self.heartbeatTimeoutMillis)))
                    RETURNING r.id, r.started_at, r.matched_events, r.deliveries, r.concurrency, r.rate_per_s
                    """, logger: logger)
                for try await (id, startedAt, matched, total, concurrency, rate) in rows.decode((String, Int64, Int32, Int32, Int32, Double?).self) {
                    taken.append(StoredReplay(
                        id: id, matchedEvents: Int(matched), concurrency: Int(concurrency), ratePerSecond: rate,
                        startedAt: Timestamp(milliseconds: startedAt), total: Int(total), remaining: []
                    ))
                }
                return taken
            }
            var result: [StoredReplay] = []
            for replay in adopted {
                result.append(try await store.bounded("a read of a replay's items") { try await self.withProgress(replay) })
            }
            return result
        } catch {
            logger.warning("cannot look for replays to take over", metadata: ["error": "\(String(reflecting: error))"])
            return []
        }
    }

    /// The replay with its unfinished items and its counts filled in.
    private func withProgress(_ replay: StoredReplay) async throws -> StoredReplay {
        var replay = replay
        let items = try await client.query("""
            SELECT position, event_seq, received_at, event_id, destination, attempts, coalesce(ordering_key, '') FROM relay_replay_item
            WHERE replay_id = \(replay.id) AND state = 'pending' ORDER BY position
            """, logger: logger)
        for try await (position, seq, receivedAt, id, destination, attempts, key) in items.decode((Int32, Int64, Int64, String, String, Int32, String).self) {
            replay.remaining.append(ReplayItem(
                event: PostgresStore.reference(seq, receivedAt: receivedAt), eventID: id, destination: destination, position: Int(position), attempts: Int(attempts),
                orderingKey: key.isEmpty ? nil : key
            ))
        }
        let counts = try await client.query("""
            SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'dead'), count(*) FILTER (WHERE state = 'skipped'),
                coalesce(sum(attempts), 0)::bigint
            FROM relay_replay_item WHERE replay_id = \(replay.id)
            """, logger: logger)
        for try await (succeeded, dead, skipped, attempts) in counts.decode((Int64, Int64, Int64, Int64).self) {
            (replay.succeeded, replay.dead, replay.skipped, replay.attempts) = (Int(succeeded), Int(dead), Int(skipped), Int(attempts))
        }
        return replay
    }

    public func replayStatus(id: String) async -> ReplayStatus? {
        do {
            let (store, logger) = (self.store, self.logger)
            return try await store.bounded("a read of a replay") {
                let rows = try await store.client.query("""
                    SELECT r.started_at, r.finished_at, r.matched_events, r.deliveries,
                        count(i.position) FILTER (WHERE i.state <> 'pending' OR i.attempts > 0),
                        count(i.position) FILTER (WHERE i.state = 'succeeded'), count(i.position) FILTER (WHERE i.state = 'dead'),
                        count(i.position) FILTER (WHERE i.state = 'skipped'), count(i.position) FILTER (WHERE i.state = 'pending' AND i.attempts > 0),
                        coalesce(sum(i.attempts), 0)::bigint
                    FROM relay_replay r LEFT JOIN relay_replay_item i ON i.replay_id = r.id
                    WHERE r.id = \(id) GROUP BY r.id
                    """, logger: logger)
                var status: ReplayStatus?
                for try await row in rows.decode((Int64, Int64?, Int32, Int32, Int64, Int64, Int64, Int64, Int64, Int64).self) {
                    let (startedAt, finishedAt, matched, total, started, succeeded, dead, skipped, retrying, attempts) = row
                    status = ReplayStatus(
                        id: id, running: finishedAt == nil, matchedEvents: Int(matched), deliveries: Int(total), started: Int(started),
                        succeeded: Int(succeeded), dead: Int(dead), skipped: Int(skipped), retrying: Int(retrying), inFlight: 0,
                        attempts: Int(attempts), startedAt: Timestamp(milliseconds: startedAt), finishedAt: finishedAt.map(Timestamp.init(milliseconds:))
                    )
                }
                return status
            }
        } catch {
            logger.warning("cannot read a replay from the database", metadata: ["replay_id": "\(id)", "error": "\(String(reflecting: error))"])
            return nil
        }
    }
}
