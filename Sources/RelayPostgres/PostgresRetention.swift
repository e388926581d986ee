import Logging
import PostgresNIO
import RelayCore
import Synchronization

/// Day partitions and retention. Events, deliveries and attempts live in one partition per UTC
/// day of the event's receive time (`relay_event_20261130`, …). Today's and tomorrow's are made
/// at start and by every maintenance pass, and an event stamped with any other day makes its
/// own before it is stored. Retention drops a day's
/// partitions whole, once the day ended more than the retention ago and nothing in it is
/// unfinished (no pending or in-flight delivery, no running replay that still has to send one
/// of its events); de-duplication keys are deleted, in small batches, after their window.
extension PostgresStore {
    static let dayMillis: Int64 = 86_400_000

    /// The UTC day (days since 1970-01-01) of a time in milliseconds.
    static func day(of milliseconds: Int64) -> Int64 {
        milliseconds >= 0 ? milliseconds / dayMillis : (milliseconds - dayMillis + 1) / dayMillis
    }

    /// Makes sure the partitions of `days` exist (cached: each day is asked once per process).
    func ensureDays(_ days: Set<Int64>) async throws {
        let missing = knownDays.withLock { days.subtracting($0) }
        guard !missing.isEmpty else { return }
        let list = missing.sorted()
        _ = try await client.query("SELECT relay_ensure_day(d) FROM unnest(\(list)::bigint[]) AS d", logger: logger).first(String.self)
        knownDays.withLock { $0.formUnion(missing) }
    }

    /// Forgets that `days` exist (one was dropped since).
    func forgetDays(_ days: Set<Int64>) {
        knownDays.withLock { $0.subtract(days) }
    }

    /// The partitions of today and tomorrow (by `now`); any other day is made when an event needs it.
    func ensureDaysAround(_ now: Timestamp) async throws {
        let today = Self.day(of: now.milliseconds)
        try await ensureDays([today, today + 1])
    }
}

/// What a maintenance pass did.
public struct RetentionPass: Sendable, Equatable {
    /// Days whose partitions were dropped.
    public var droppedDays: [Int64] = []
    /// Days past the retention kept because something in them is unfinished.
    public var heldDays: [Int64] = []
    /// De-duplication keys deleted after their window.
    public var expiredKeys = 0

    public init() {}
}

/// One instance at a time (an advisory lock) runs the store's maintenance: the coming days'
/// partitions, retention, de-duplication expiry.
public final class PostgresRetention: Sendable {
    let store: PostgresStore
    /// Days are dropped once they ended this long ago (0: never).
    public let retentionMillis: Int64
    /// De-duplication keys older than this are deleted.
    public let deduplicationWindowMillis: Int64
    private let held = Atomic<Int>(0)
    /// The advisory lock key: "relay-retain" folded into 63 bits (mixed with the schema's name).
    static let lockKey: Int64 = 0x7265_6C61_795F_7274
    static let keyBatch = 5_000

    public init(store: PostgresStore, retentionMillis: Int64, deduplicationWindowMillis: Int64 = 7 * 86_400_000) {
        self.store = store
        self.retentionMillis = max(0, retentionMillis)
        self.deduplicationWindowMillis = retentionMillis > 0 ? min(deduplicationWindowMillis, retentionMillis) : deduplicationWindowMillis
    }

    /// Days past the retention that the last pass kept (the `relay_store_partitions_held` gauge).
    public var heldDays: Int { held.load(ordering: .relaxed) }

    private var logger: Logger { store.logger }

    /// One pass at `now`; nil when another instance holds the lock (it does the work).
    @discardableResult
    public func pass(now: Timestamp) async throws -> RetentionPass? {
        try await withDeadline(store.callLimit * 12, "PostgreSQL did not finish a retention pass within \(store.callLimit * 12)") {
            try await self.store.client.withConnection { connection in
                guard try await connection.query("SELECT pg_try_advisory_lock(\(self.store.lockKey(Self.lockKey)))", logger: self.logger).first(Bool.self) == true else { return nil }
                do {
                    let result = try await self.pass(now: now, on: connection)
                    _ = try await connection.query("SELECT pg_advisory_unlock(\(self.store.lockKey(Self.lockKey)))", logger: self.logger).first(Bool.self)
                    return result
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(self.store.lockKey(Self.lockKey)))", logger: self.logger).first(Bool.self)
                    throw error
                }
            }
        }
    }

    private func pass(now: Timestamp, on connection: PostgresConnection) async throws -> RetentionPass {
        var result = RetentionPass()
        try await store.ensureDaysAround(now)
        try await finishPendingDetaches(on: connection)
        if retentionMillis > 0 {
            let cutoff = now.milliseconds - retentionMillis
            for day in try await days(on: connection) where (day + 1) * PostgresStore.dayMillis <= cutoff {
                if try await unfinished(day: day, on: connection) {
                    result.heldDays.append(day)
                    continue
                }
                try await drop(day: day, on: connection)
                result.droppedDays.append(day)
            }
            // Finished replays and instances gone for longer than the retention.
            try await run("DELETE FROM relay_replay WHERE finished_at < \(cutoff)", on: connection)
            try await run("DELETE FROM relay_instance WHERE heartbeat_at < \(cutoff)", on: connection)
        }
        result.expiredKeys = try await expireKeys(before: now.milliseconds - deduplicationWindowMillis, on: connection)
        if !result.droppedDays.isEmpty {
            store.forgetDays(Set(result.droppedDays))
            logger.info("retention dropped old days", metadata: ["days": "\(result.droppedDays.map(Self.date).joined(separator: ","))"])
        }
        let newlyHeld = result.heldDays.count
        if newlyHeld > 0 && newlyHeld != held.load(ordering: .relaxed) {
            logger.warning("retention keeps days past the retention: something in them is unfinished", metadata: ["days": "\(result.heldDays.map(Self.date).joined(separator: ","))"])
        }
        held.store(newlyHeld, ordering: .relaxed)
        return result
    }

    /// The days that have partitions, oldest first.
    private func days(on connection: PostgresConnection) async throws -> [Int64] {
        let rows = try await connection.query("""
            SELECT (to_date(right(c.relname, 8), 'YYYYMMDD') - date '1970-01-01')::bigint
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'relay_event'::regclass AND c.relname ~ '^relay_event_[0-9]{8}$'
            ORDER BY 1
            """, logger: logger)
        var days: [Int64] = []
        for try await day in rows.decode(Int64.self) { days.append(day) }
        return days
    }

    /// Whether a delivery of the day is unfinished or a running replay still sends one of its events.
    private func unfinished(day: Int64, on connection: PostgresConnection) async throws -> Bool {
        let (low, high) = (day * PostgresStore.dayMillis, (day + 1) * PostgresStore.dayMillis)
        return try await connection.query("""
            SELECT EXISTS (SELECT 1 FROM relay_delivery WHERE received_at >= \(low) AND received_at < \(high) AND state IN ('pending', 'in_flight'))
                OR EXISTS (SELECT 1 FROM relay_replay_item i JOIN relay_replay r ON r.id = i.replay_id
                           WHERE r.finished_at IS NULL AND i.state = 'pending' AND i.received_at >= \(low) AND i.received_at < \(high))
            """, logger: logger).first(Bool.self) ?? true
    }

    /// Detaches the day's partitions without blocking writers to the others (concurrently), then drops them.
    private func drop(day: Int64, on connection: PostgresConnection) async throws {
        let suffix = Self.date(day)
        for table in ["relay_attempt", "relay_delivery", "relay_event"] {
            let partition = "\(table)_\(suffix)"
            try await run("ALTER TABLE \(table) DETACH PARTITION \(partition) CONCURRENTLY", on: connection)
            try await run("DROP TABLE \(partition)", on: connection)
        }
    }

    /// A detach cut short (the connection died between its two steps) is finished, then dropped.
    private func finishPendingDetaches(on connection: PostgresConnection) async throws {
        let rows = try await connection.query("""
            SELECT p.relname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
            WHERE i.inhdetachpending AND p.relname IN ('relay_event', 'relay_delivery', 'relay_attempt') AND p.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
            """, logger: logger)
        var pending: [(String, String)] = []
        for try await (parent, partition) in rows.decode((String, String).self) { pending.append((parent, partition)) }
        for (parent, partition) in pending {
            try await run("ALTER TABLE \(parent) DETACH PARTITION \(partition) FINALIZE", on: connection)
            try await run("DROP TABLE \(partition)", on: connection)
        }
    }

    /// Deletes de-duplication keys received before `cutoff`, a batch at a time.
    private func expireKeys(before cutoff: Int64, on connection: PostgresConnection) async throws -> Int {
        var total = 0
        while true {
            var deleted = 0
            let rows = try await connection.query("""
                DELETE FROM relay_dedup WHERE ctid = ANY(ARRAY(SELECT ctid FROM relay_dedup WHERE received_at < \(cutoff) LIMIT \(Self.keyBatch)))
                RETURNING 1
                """, logger: logger)
            for try await _ in rows.decode(Int32.self) { deleted += 1 }
            total += deleted
            if deleted < Self.keyBatch { return total }
        }
    }

    /// Runs one statement (names and numbers made here, never input) and reads it to the end.
    private func run(_ sql: String, on connection: PostgresConnection) async throws {
        for try await _ in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) {}
    }

    /// A day as its partitions' suffix, YYYYMMDD.
    static func date(_ day: Int64) -> String {
        let time = Timestamp(milliseconds: day * PostgresStore.dayMillis).rfc3339
        return String(time.prefix(10).filter { $0 != "-" })
    }
}
