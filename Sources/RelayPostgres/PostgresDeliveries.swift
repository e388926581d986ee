import Foundation
import Logging
import NIOCore
import PostgresNIO
import RelayCore
import Synchronization

/// The delivery store on PostgreSQL, shared by every instance on the database. A claim locks
/// the lane rows it can (`FOR UPDATE SKIP LOCKED`), counts what is in flight for each across all
/// instances, and moves at most the free slots of due pending rows to in flight with a lease and
/// a fresh token; a result is applied only with the current token (a late one is recorded as
/// fenced). The breaker and the 410 pause live in the lane row, so they hold for the destination
/// as a whole. Instances heartbeat; one rescues deliveries whose lease ran out or whose holder
/// stopped heartbeating.
public final class PostgresDeliveryStore: DeliveryStore {
    public let store: PostgresStore
    /// This instance's id in `relay_instance` and in the leases it holds.
    public let instance: String
    private let breaker: CircuitBreaker.Configuration
    /// How often the store looks for work when nothing woke it (the fallback for lost wake-ups).
    private let pollInterval: Duration
    /// Partitions, retention and de-duplication expiry, run every `maintenanceInterval` on the
    /// relay's clock (by one instance at a time); nil: none (tests).
    public let retention: PostgresRetention?
    private let maintenanceInterval: Duration
    private let clock: any RelayClock
    private let state = Mutex(State())
    /// A claim is leased for the destination's timeout plus this.
    static let leaseMarginMillis: Int64 = 30_000
    /// An instance whose heartbeat is older than this has its deliveries moved on.
    static let heartbeatTimeoutMillis: Int64 = 15_000

    struct State {
        var destinations: [String: DestinationConfig] = [:]
        var closed = false
    }

    /// Results waiting to be recorded, and whether a flush is taking them.
    struct Results {
        var queue: [(result: DeliveryResult, done: CheckedContinuation<Void, any Error>)] = []
        var flushing = false
    }
    let results = Mutex(Results())
    /// Results recorded per transaction at most.
    static let maxResultBatch = 200

    public init(
        store: PostgresStore, instance: String = "relay-" + UUID().uuidString.lowercased(), breaker: CircuitBreaker.Configuration = .init(),
        pollInterval: Duration = .milliseconds(500), retention: PostgresRetention? = nil, maintenanceInterval: Duration = .seconds(60), clock: any RelayClock = SystemClock()
    ) {
        self.store = store
        self.pollInterval = pollInterval
        self.retention = retention
        self.maintenanceInterval = maintenanceInterval
        self.clock = clock
        self.instance = instance
        self.breaker = breaker
    }

    var logger: Logger { store.logger }
    var client: PostgresClient { store.client }

    // MARK: - Following

    /// Heartbeats, rescues expired claims, and looks for new work every `pollInterval`, until
    /// `close()`. Events this instance stores wake it at once; other instances' events and given
    /// back deliveries wake it by `NOTIFY` (polling is the fallback).
    public func run(newWork: @escaping @Sendable () -> Void, replaysNeed: ReplayFloor) async {
        let subscription = store.workSignal.subscribe(newWork)
        defer { store.workSignal.unsubscribe(subscription) }
        let store = self.store
        await withDiscardingTaskGroup { group in
            group.addTask { await store.listenForWakeUps(newWork) }
            if let retention { group.addTask { await self.maintain(retention) } }
            let tick = Duration.milliseconds(500)
            var sincePoll = pollInterval
            while !state.withLock({ $0.closed }) {
                do {
                    try await heartbeat()
                    if try await rescue() > 0 { store.wakeUps.request(store) }
                } catch {
                    logger.warning("cannot reach the database for deliveries; retrying", metadata: ["error": "\(String(reflecting: error))"])
                }
                if sincePoll >= pollInterval {
                    newWork()
                    sincePoll = .zero
                }
                // Cancelled: stop as if closed. A sleep that throws at once would make this loop
                // spin, holding one of the few cooperative threads.
                do { try await Task.sleep(for: tick) } catch { break }
                sincePoll += tick
            }
            group.cancelAll()
        }
        // Its claims (given back already) and replays move on at once, not after the heartbeat timeout.
        try? await execute("leaving", "DELETE FROM relay_instance WHERE id = \(instance)")
    }

    /// `run` returns within its poll interval.
    public func close() async {
        state.withLock { $0.closed = true }
    }

    /// A maintenance pass now and every `maintenanceInterval` until `close()`.
    private func maintain(_ retention: PostgresRetention) async {
        while !state.withLock({ $0.closed }) {
            do {
                try await retention.pass(now: clock.now())
            } catch {
                logger.warning("the store's maintenance pass failed; will try again", metadata: ["error": "\(String(reflecting: error))"])
            }
            let next = ContinuousClock.now + maintenanceInterval
            while ContinuousClock.now < next, !state.withLock({ $0.closed }) {
                do { try await Task.sleep(for: .milliseconds(500)) } catch { return }  // cancelled: no spinning
            }
        }
    }

    private func heartbeat() async throws {
        let now = SystemClock().now().milliseconds
        try await execute("a heartbeat", """
            INSERT INTO relay_instance (id, host, pid, heartbeat_at) VALUES (\(instance), \(ProcessInfo.processInfo.hostName), \(Int32(ProcessInfo.processInfo.processIdentifier)), \(now))
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at
            """)
    }

    /// Moves back to pending every in-flight delivery whose lease ran out or whose holder has
    /// not heartbeated for `heartbeatTimeoutMillis`.
    @discardableResult
    func rescue() async throws -> Int {
        let now = SystemClock().now().milliseconds
        let rescued = try await count("a rescue of lost claims", """
            UPDATE relay_delivery SET state = 'pending', lease_owner = NULL, lease_until = NULL
            WHERE state = 'in_flight' AND (lease_until < \(now) OR NOT EXISTS (
                SELECT 1 FROM relay_instance i WHERE i.id = relay_delivery.lease_owner AND i.heartbeat_at > \(now - Self.heartbeatTimeoutMillis)))
            RETURNING destination
            """)
        if rescued > 0 { logger.warning("deliveries of a stopped instance moved on", metadata: ["deliveries": "\(rescued)"]) }
        return rescued
    }

    // MARK: - Lanes

    public func configure(_ destinations: [String: DestinationConfig]) async {
        state.withLock { $0.destinations = destinations }
        let names = destinations.keys.sorted()
        do {
            try await execute("an update of the destinations", """
                INSERT INTO relay_lane (destination) SELECT * FROM unnest(\(names)::text[])
                ON CONFLICT (destination) DO UPDATE SET paused = false
                """)
        } catch {
            logger.error("cannot update the destinations in the database", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Saved in the destination's lane row, which every instance's claims read.
    public func setOperatorPause(_ destination: String, paused: Bool) async throws {
        try await execute("a pause of a destination", """
            INSERT INTO relay_lane (destination, operator_paused) VALUES (\(destination), \(paused))
            ON CONFLICT (destination) DO UPDATE SET operator_paused = EXCLUDED.operator_paused
            """)
        if !paused { workMayBeDue() }
    }

    /// Deliveries may have become claimable: this instance claims again and every other is
    /// woken (NOTIFY).
    func workMayBeDue() {
        store.workSignal.signal()
        store.wakeUps.request(store)
    }

    /// Releases the key the dead delivery of `sequence` to `destination` holds; a row when it held one.
    static func releaseHold(ofEvent sequence: UInt64, _ destination: String) -> PostgresQuery {
        """
        UPDATE relay_delivery SET held = false
        WHERE event_seq = \(Int64(clamping: sequence)) AND destination = \(destination) AND held
        RETURNING 1
        """
    }

    public func claim(now: Timestamp) async -> ClaimBatch {
        let destinations = state.withLock { $0.destinations }
        guard !destinations.isEmpty else { return ClaimBatch(claims: [], nextDue: nil) }
        do {
            return try await store.bounded("a claim") {
                try await self.client.withTransaction(logger: self.logger) { connection in
                    try await self.claim(now: now, destinations: destinations, on: connection)
                }
            }
        } catch {
            logger.warning("cannot claim deliveries; will try again", metadata: ["error": "\(String(reflecting: error))"])
            return ClaimBatch(claims: [], nextDue: Timestamp(milliseconds: now.milliseconds + 1_000))
        }
    }

    private func claim(now: Timestamp, destinations: [String: DestinationConfig], on connection: PostgresConnection) async throws -> ClaimBatch {
        var lanes: [(String, CircuitBreaker, TokenBucket?)] = []
        let locked = try await connection.query("""
            SELECT destination, consecutive_failures, probes, probe_not_before, paused OR operator_paused, rate_tokens, rate_updated_at FROM relay_lane
            WHERE destination = ANY(\(destinations.keys.sorted())::text[]) ORDER BY destination FOR UPDATE SKIP LOCKED
            """, logger: logger)
        var lockedNames: Set<String> = []
        for try await (name, failures, probes, notBefore, paused, tokens, updatedAt) in locked.decode((String, Int32, Int32, Int64?, Bool, Double?, Int64?).self) {
            lockedNames.insert(name)
            guard !paused else { continue }
            let bucket = destinations[name].flatMap { TokenBucket.make(for: $0, tokens: tokens, updatedAt: updatedAt.map(Timestamp.init(milliseconds:))) }
            lanes.append((name, CircuitBreaker(configuration: breaker, consecutiveFailures: Int(failures), probes: Int(probes), probeNotBefore: notBefore.map(Timestamp.init(milliseconds:))), bucket))
        }
        // A lane locked by another instance's claim or a replay's token: look again shortly, not
        // only at the next poll (replays asking for tokens must not starve the live deliveries).
        let skipped = lockedNames.count < destinations.count
        guard !lanes.isEmpty else { return ClaimBatch(claims: [], nextDue: skipped ? Timestamp(milliseconds: now.milliseconds + 20) : nil) }
        var inFlight: [String: Int] = [:]
        let counts = try await connection.query("""
            SELECT destination, count(*) FROM relay_delivery WHERE state = 'in_flight' AND destination = ANY(\(lanes.map(\.0))::text[]) GROUP BY destination
            """, logger: logger)
        for try await (name, count) in counts.decode((String, Int64).self) { inFlight[name] = Int(count) }
        var batch = ClaimBatch(claims: [], nextDue: nil)
        func later(_ time: Timestamp) { batch.nextDue = min(batch.nextDue ?? time, time) }
        if skipped { later(Timestamp(milliseconds: now.milliseconds + 20)) }
        for (name, breaker, bucket) in lanes {
            guard let destination = destinations[name] else { continue }
            let busy = inFlight[name] ?? 0
            let limit: Int
            switch breaker.admission(now: now, maxInFlight: destination.maxInFlight) {
            case .wait(let notBefore):
                if busy == 0 { later(notBefore) }
                continue
            case .allow(let maxInFlight):
                limit = maxInFlight
            }
            // The rate limit allows as many starts as the bucket holds whole tokens.
            let tokens = bucket?.wholeTokens(now: now) ?? Int.max
            let free = min(limit - busy, tokens)
            var taken = 0
            if free > 0 {
                let leaseUntil = now.milliseconds + Int64(destination.timeoutMillis) + Self.leaseMarginMillis
                let rows = try await connection.query("""
                    UPDATE relay_delivery d SET state = 'in_flight', lease_owner = \(instance), lease_until = \(leaseUntil), claim_token = nextval('relay_claim_token')
                    FROM (SELECT event_seq, destination, received_at FROM relay_delivery q
                          WHERE destination = \(name) AND state = 'pending' AND due_at <= \(now.milliseconds)
                            AND (ordering_key IS NULL OR NOT EXISTS (
                                SELECT 1 FROM relay_delivery o
                                WHERE o.destination = q.destination AND o.ordering_key = q.ordering_key
                                  AND (o.state IN ('pending', 'in_flight') OR o.held)
                                  AND (o.event_seq < q.event_seq OR o.state = 'in_flight')))
                          ORDER BY due_at, event_seq LIMIT \(Int64(free)) FOR UPDATE SKIP LOCKED) p, relay_event e
                    WHERE d.event_seq = p.event_seq AND d.destination = p.destination AND d.received_at = p.received_at
                      AND e.seq = d.event_seq AND e.received_at = d.received_at
                    RETURNING d.event_seq, e.id, e.received_at, d.attempts, d.claim_token, d.due_at
                    """, logger: logger)
                var claimed: [(DeliveryClaim, Int64)] = []
                for try await (seq, id, receivedAt, attempts, token, due) in rows.decode((Int64, String, Int64, Int32, Int64, Int64).self) {
                    claimed.append((DeliveryClaim(
                        event: PostgresStore.reference(seq, receivedAt: receivedAt), eventID: id, destination: name,
                        receivedAt: Timestamp(milliseconds: receivedAt), attempts: Int(attempts), token: UInt64(token)
                    ), due))
                }
                // In due order (UPDATE ... RETURNING keeps none).
                claimed.sort { ($0.1, $0.0.event.sequence) < ($1.1, $1.0.event.sequence) }
                batch.claims += claimed.map(\.0)
                taken = claimed.count
                if breaker.isOpen && taken > 0 {
                    try await connection.query("UPDATE relay_lane SET probes = probes + \(Int32(taken)) WHERE destination = \(name)", logger: logger)
                }
            }
            if var bucket {
                _ = bucket.take(taken, now: now)
                // Held back by the rate limit: slots were free, tokens were not, and a due delivery is left.
                var limited = false
                if taken == tokens && busy + taken < limit {
                    limited = try await scalar(Bool.self, """
                        SELECT EXISTS (SELECT 1 FROM relay_delivery WHERE destination = \(name) AND state = 'pending' AND due_at <= \(now.milliseconds))
                        """, on: connection) ?? false
                }
                if limited { later(bucket.nextToken(now: now)) }
                if taken > 0 || limited { try await save(bucket, of: name, limited: limited, now: now, on: connection) }
            }
            if busy + taken < limit,
               let due = try await scalar(Int64.self, "SELECT coalesce(min(due_at), -1) FROM relay_delivery WHERE destination = \(name) AND state = 'pending' AND due_at > \(now.milliseconds)", on: connection),
               due >= 0 {
                later(Timestamp(milliseconds: due))
            }
        }
        return batch
    }

    /// Writes a destination's bucket back to its row (NULL tokens there: a full bucket), and
    /// counts a wait for it.
    private func save(_ bucket: TokenBucket, of destination: String, limited: Bool, now: Timestamp, on connection: PostgresConnection) async throws {
        try await connection.query("""
            UPDATE relay_lane SET rate_tokens = \(bucket.tokens), rate_updated_at = \(bucket.updatedAt?.milliseconds ?? now.milliseconds),
                rate_limited = rate_limited + \(limited ? 1 : 0)
            WHERE destination = \(destination)
            """, logger: logger)
    }

    /// One transaction on the destination's row, so the bucket holds across instances. A
    /// database that does not answer: ask again in a second (never over the limit).
    public func takeReplayToken(_ destination: String, now: Timestamp) async -> Timestamp? {
        guard let config = state.withLock({ $0.destinations[destination] }), config.ratePerSecond != nil else { return nil }
        do {
            return try await store.bounded("a replay's rate token") {
                try await self.client.withTransaction(logger: self.logger) { connection -> Timestamp? in
                    // The row may be missing (its configure failed): made here, so the bucket holds.
                    try await connection.query("INSERT INTO relay_lane (destination) VALUES (\(destination)) ON CONFLICT DO NOTHING", logger: self.logger)
                    // SKIP LOCKED, as the claims: a replay never waits behind a live claim; it asks again shortly.
                    let rows = try await connection.query(
                        "SELECT rate_tokens, rate_updated_at FROM relay_lane WHERE destination = \(destination) FOR UPDATE SKIP LOCKED", logger: self.logger
                    )
                    var row: (Double?, Int64?)?
                    for try await found in rows.decode((Double?, Int64?).self) { row = found }
                    guard let row else { return Timestamp(milliseconds: now.milliseconds + 20) }
                    guard var bucket = TokenBucket.make(for: config, tokens: row.0, updatedAt: row.1.map(Timestamp.init(milliseconds:))) else { return nil }
                    let granted = bucket.take(1, now: now) == 1
                    try await self.save(bucket, of: destination, limited: !granted, now: now, on: connection)
                    return granted ? nil : bucket.nextToken(now: now)
                }
            }
        } catch {
            logger.warning("cannot take a rate token for a replay; will ask again", metadata: ["error": "\(String(reflecting: error))"])
            return Timestamp(milliseconds: now.milliseconds + 1_000)
        }
    }

    private func scalar<T: PostgresDecodable & Sendable>(_ type: T.Type, _ query: PostgresQuery, on connection: PostgresConnection) async throws -> T? {
        try await connection.query(query, logger: logger).first(T.self)
    }

    public func complete(_ claim: DeliveryClaim, _ resolution: AttemptResolution, now: Timestamp, maxBackoffMillis: Int64) async {
        let result = DeliveryResult(claim: claim, resolution: resolution, now: now, maxBackoffMillis: maxBackoffMillis)
        // A database that is down for a moment: tried again every second while the claim's
        // lease margin lasts, so the delivery moves on as soon as the database is back rather
        // than when its lease runs out. The claim token makes a second try harmless.
        let giveUp = ContinuousClock.now + .milliseconds(Self.leaseMarginMillis)
        while true {
            do {
                try await record(result)
                return
            } catch {
                guard !self.state.withLock({ $0.closed }), !Task.isCancelled, ContinuousClock.now < giveUp else {
                    // The claim's lease runs out and the delivery is attempted again (at least once).
                    logger.error("cannot record a delivery outcome in the database", metadata: ["destination": "\(claim.destination)", "event_id": "\(claim.eventID)", "error": "\(String(reflecting: error))"])
                    return
                }
                logger.warning("cannot record a delivery outcome yet; trying again", metadata: ["destination": "\(claim.destination)", "event_id": "\(claim.eventID)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Hands a result to the flusher and waits until its transaction committed (or failed).
    /// Results that finish together are recorded together: one transaction (and one lock of
    /// each destination's lane row, one commit) for many, as ingest does for events.
    private func record(_ result: DeliveryResult) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let start = results.withLock { results -> Bool in
                results.queue.append((result, done))
                guard !results.flushing else { return false }
                results.flushing = true
                return true
            }
            if start { Task { await self.flushResults() } }
        }
    }

    private func flushResults() async {
        while true {
            let batch = results.withLock { results -> [(result: DeliveryResult, done: CheckedContinuation<Void, any Error>)] in
                let batch = Array(results.queue.prefix(Self.maxResultBatch))
                results.queue.removeFirst(batch.count)
                if batch.isEmpty { results.flushing = false }
                return batch
            }
            if batch.isEmpty { return }
            let items = batch.map(\.result)
            do {
                try await store.bounded("delivery results") { try await self.apply(items) }
                for (_, done) in batch { done.resume() }
            } catch {
                for (_, done) in batch { done.resume(throwing: error) }
            }
        }
    }

    /// Records `results` in one transaction: each delivery moves on only with its claim's
    /// current token (else its attempt is recorded as fenced), then each destination's breaker
    /// and counters take its results in order.
    private func apply(_ results: [DeliveryResult]) async throws {
        let logger = self.logger
        // A result handed over twice (a retry after an unknown outcome) counts once; the second is fenced.
        var seen: Set<Int64> = []
        let first = results.map { seen.insert(Int64(clamping: $0.claim.token)).inserted }
        // Destinations whose keys a dead delivery holds (on_dead: hold).
        let holds = state.withLock { state in Set(state.destinations.filter { $0.value.ordering?.onDead == .hold }.keys) }
        try await client.withTransaction(logger: logger) { connection in
            let candidates = results.indices.filter { first[$0] }
            var applied: Set<Int64> = []
            if !candidates.isEmpty {
                let rows = try await connection.query("""
                    UPDATE relay_delivery d SET state = c.state, attempts = c.attempt, due_at = c.due, lease_owner = NULL, lease_until = NULL,
                        held = c.state = 'dead' AND c.hold AND d.ordering_key IS NOT NULL, held_at = CASE WHEN c.state = 'dead' THEN c.due END
                    FROM unnest(\(candidates.map { Int64(clamping: results[$0].claim.event.sequence) })::bigint[],
                                \(candidates.map { results[$0].claim.receivedAt.milliseconds })::bigint[],
                                \(candidates.map { results[$0].claim.destination })::text[],
                                \(candidates.map { Int64(clamping: results[$0].claim.token) })::bigint[],
                                \(candidates.map { results[$0].state })::text[],
                                \(candidates.map { Int32(clamping: results[$0].resolution.record.attempt) })::integer[],
                                \(candidates.map { results[$0].due })::bigint[],
                                \(candidates.map { holds.contains(results[$0].claim.destination) })::boolean[]) AS c(event_seq, received_at, destination, token, state, attempt, due, hold)
                    WHERE d.event_seq = c.event_seq AND d.received_at = c.received_at AND d.destination = c.destination
                      AND d.state = 'in_flight' AND d.claim_token = c.token
                    RETURNING c.token
                    """, logger: logger)
                for try await token in rows.decode(Int64.self) { applied.insert(token) }
            }
            let fenced = results.indices.map { !first[$0] || !applied.contains(Int64(clamping: results[$0].claim.token)) }
            try await connection.query("""
                INSERT INTO relay_attempt (event_seq, received_at, destination, replay_id, record, fenced, at, outcome, duration_ms)
                SELECT r.event_seq, r.received_at, r.destination, '', r.record, r.fenced, r.at, r.outcome, r.duration_ms FROM unnest(
                    \(results.map { Int64(clamping: $0.claim.event.sequence) })::bigint[], \(results.map { $0.claim.receivedAt.milliseconds })::bigint[],
                    \(results.map { $0.claim.destination })::text[], \(results.map { ByteBuffer(bytes: $0.resolution.record.encoded()) })::bytea[],
                    \(fenced)::boolean[], \(results.map { $0.resolution.record.time.milliseconds })::bigint[],
                    \(results.map { Int16($0.resolution.record.outcome.rawValue) })::smallint[], \(results.map { Int32(clamping: $0.resolution.record.durationMillis) })::integer[])
                    WITH ORDINALITY AS r(event_seq, received_at, destination, record, fenced, at, outcome, duration_ms, n)
                ORDER BY r.n
                """, logger: logger)
            for index in results.indices where fenced[index] {
                logger.warning("a late delivery result was fenced: its claim had moved on", metadata: ["destination": "\(results[index].claim.destination)", "event_id": "\(results[index].claim.eventID)"])
            }
            let moved = results.indices.filter { !fenced[$0] }
            guard !moved.isEmpty else { return }
            // Lane rows locked in a stable order, so concurrent flushes (other instances) agree.
            let names = Set(moved.map { results[$0].claim.destination }).sorted()
            let lanes = try await connection.query("""
                SELECT destination, consecutive_failures, probes, probe_not_before FROM relay_lane WHERE destination = ANY(\(names)::text[]) ORDER BY destination FOR UPDATE
                """, logger: logger)
            var breakers: [String: CircuitBreaker] = [:]
            for try await (name, failures, probes, notBefore) in lanes.decode((String, Int32, Int32, Int64?).self) {
                breakers[name] = CircuitBreaker(configuration: self.breaker, consecutiveFailures: Int(failures), probes: Int(probes), probeNotBefore: notBefore.map(Timestamp.init(milliseconds:)))
            }
            var succeeded: [String: Int64] = [:], dead: [String: Int64] = [:], pauses: [String: Bool] = [:]
            for index in moved {
                let result = results[index]
                let name = result.claim.destination
                var breaker = breakers[name] ?? CircuitBreaker(configuration: self.breaker)
                breaker.record(result.resolution.breaker, now: result.now, maxBackoffMillis: result.maxBackoffMillis)
                breakers[name] = breaker
                if result.resolution.next == .succeeded { succeeded[name, default: 0] += 1 }
                if case .dead(let pausesDestination) = result.resolution.next {
                    dead[name, default: 0] += 1
                    if pausesDestination { pauses[name] = true }
                }
            }
            let updates = names.compactMap { name in breakers[name].map { (name, $0) } }
            try await connection.query("""
                UPDATE relay_lane l SET consecutive_failures = u.failures, probes = u.probes, probe_not_before = nullif(u.not_before, -1),
                    succeeded = l.succeeded + u.succeeded, dead = l.dead + u.dead, paused = l.paused OR u.pauses
                FROM unnest(\(updates.map(\.0))::text[], \(updates.map { Int32(clamping: $0.1.consecutiveFailures) })::integer[],
                            \(updates.map { Int32(clamping: $0.1.probes) })::integer[], \(updates.map { $0.1.probeNotBefore?.milliseconds ?? -1 })::bigint[],
                            \(updates.map { succeeded[$0.0] ?? 0 })::bigint[], \(updates.map { dead[$0.0] ?? 0 })::bigint[],
                            \(updates.map { pauses[$0.0] ?? false })::boolean[]) AS u(destination, failures, probes, not_before, succeeded, dead, pauses)
                WHERE l.destination = u.destination
                """, logger: logger)
        }
    }

    public func release(_ claim: DeliveryClaim) async {
        do {
            try await execute("giving a delivery back", """
                UPDATE relay_delivery SET state = 'pending', lease_owner = NULL, lease_until = NULL
                WHERE event_seq = \(Int64(clamping: claim.event.sequence)) AND received_at = \(claim.receivedAt.milliseconds) AND destination = \(claim.destination)
                  AND state = 'in_flight' AND claim_token = \(Int64(clamping: claim.token))
                """)
            store.wakeUps.request(store)
        } catch {
            logger.warning("cannot give a delivery back; its lease will run out", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    public func event(_ reference: EventReference) async throws -> Event {
        try await store.event(reference)
    }

    public func statuses() async -> [String: DestinationStatus] {
        do {
            return try await store.bounded("a read of destination status") { try await self.readStatuses() }
        } catch {
            logger.warning("cannot read destination status from the database", metadata: ["error": "\(String(reflecting: error))"])
            return [:]
        }
    }

    private func readStatuses() async throws -> [String: DestinationStatus] {
        var result: [String: DestinationStatus] = [:]
        let rows = try await client.query("""
            SELECT l.destination, l.paused, l.operator_paused, l.rate_limited, l.consecutive_failures, l.succeeded, l.dead,
                (SELECT count(*) FROM relay_delivery d WHERE d.destination = l.destination AND d.state IN ('pending', 'in_flight')),
                (SELECT count(*) FROM relay_delivery d WHERE d.destination = l.destination AND d.state = 'in_flight')
            FROM relay_lane l
            """, logger: logger)
        for try await (name, paused, operatorPaused, rateLimited, failures, succeeded, dead, pending, inFlight) in rows.decode((String, Bool, Bool, Int64, Int32, Int64, Int64, Int64, Int64).self) {
            result[name] = DestinationStatus(
                pending: Int(pending), inFlight: Int(inFlight), succeeded: Int(succeeded), dead: Int(dead), paused: paused,
                breakerOpen: Int(failures) >= breaker.threshold, overflowing: false, operatorPaused: operatorPaused
            )
            result[name]?.rateLimited = Int(rateLimited)
        }
        let held = try await client.query("""
            SELECT h.destination, h.ordering_key, e.id, h.event_seq, h.received_at, coalesce(h.held_at, 0), h.n,
                (SELECT count(*) FROM relay_delivery w WHERE w.destination = h.destination AND w.ordering_key = h.ordering_key AND w.state IN ('pending', 'in_flight'))
            FROM (SELECT d.*, row_number() OVER (PARTITION BY d.destination ORDER BY d.held_at, d.ordering_key) AS r,
                         count(*) OVER (PARTITION BY d.destination) AS n
                  FROM relay_delivery d WHERE d.held AND d.ordering_key IS NOT NULL) h
            JOIN relay_event e ON e.seq = h.event_seq AND e.received_at = h.received_at
            WHERE h.r <= \(Int64(DestinationStatus.heldKeysListed))
            ORDER BY h.destination, h.r
            """, logger: logger)
        for try await (name, key, id, seq, receivedAt, since, count, waiting) in held.decode((String, String, String, Int64, Int64, Int64, Int64, Int64).self) {
            result[name]?.keysBlocked = Int(count)
            result[name]?.heldKeys.append(HeldKey(
                key: key, eventID: id, event: PostgresStore.reference(seq, receivedAt: receivedAt), since: Timestamp(milliseconds: since), waiting: Int(waiting)
            ))
        }
        return result
    }

    /// An operator's skip: the delivery stays dead, its key moves on (every instance's next claim sees it).
    public func releaseHeldKey(_ destination: String, event: EventReference, eventID: String, now: Timestamp) async throws -> Bool {
        let released = try await count("a release of a held key", Self.releaseHold(ofEvent: event.sequence, destination)) > 0
        if released { workMayBeDue() }
        return released
    }

    /// Runs one statement within the store's call limit.
    func execute(_ what: String, _ query: PostgresQuery) async throws {
        _ = try await count(what, query)
    }

    /// Runs one statement within the store's call limit; the number of rows it returned.
    func count(_ what: String, _ query: PostgresQuery) async throws -> Int {
        try await store.bounded(what) {
            var rows = 0
            for try await _ in try await self.client.query(query, logger: self.logger) { rows += 1 }
            return rows
        }
    }

    /// Retention drops whole partitions once nothing in them is unfinished: nothing to hold here.
    public func holdRetention() async {}

    public func releaseRetention() async {}
}

/// Callbacks told when this instance stored new deliveries (so its engine claims them at once).
final class WorkSignal: Sendable {
    private let callbacks = Mutex<[UInt64: @Sendable () -> Void]>([:])
    private let next = Atomic<UInt64>(0)

    func subscribe(_ callback: @escaping @Sendable () -> Void) -> UInt64 {
        let id = next.add(1, ordering: .relaxed).newValue
        callbacks.withLock { $0[id] = callback }
        return id
    }

    func unsubscribe(_ id: UInt64) {
        callbacks.withLock { $0[id] = nil }
    }

    func signal() {
        for callback in callbacks.withLock({ Array($0.values) }) { callback() }
    }
}

/// What `relay store status` shows.
public struct PostgresStoreStatus: Sendable {
    public struct Instance: Sendable {
        public var id: String
        public var host: String
        public var pid: Int
        /// Milliseconds since its last heartbeat.
        public var heartbeatAgeMillis: Int64
    }

    public struct Destination: Sendable {
        public var name: String
        public var pending: Int
        public var inFlight: Int
        public var dead: Int
    }

    public var schemaVersion: Int
    public var latestVersion: Int
    public var instances: [Instance]
    public var destinations: [Destination]
    /// The UTC days that have partitions (`YYYY-MM-DD`), oldest first: what retention has kept.
    public var days: [String] = []
}

extension PostgresStore {
    /// The schema version, the instances that heartbeat, and the unfinished and dead deliveries
    /// per destination (read-only; gives up after `limit`).
    public func status(limit: Duration = .seconds(30)) async throws -> PostgresStoreStatus {
        try await withDeadline(limit, "cannot reach PostgreSQL at \(url) within \(limit)") {
            let now = SystemClock().now().milliseconds
            var status = PostgresStoreStatus(schemaVersion: 0, latestVersion: Int(PostgresSchema.latest), instances: [], destinations: [])
            // Not migrated yet: version 0, nothing else to show.
            guard try await self.schemaExists() else { return status }
            status.schemaVersion = Int(try await self.integer(sql: "SELECT coalesce(max(version), 0)::bigint FROM relay_schema") ?? 0)
            let instances = try await self.client.query("SELECT id, host, pid, heartbeat_at FROM relay_instance ORDER BY id", logger: self.logger)
            for try await (id, host, pid, heartbeat) in instances.decode((String, String, Int32, Int64).self) {
                status.instances.append(.init(id: id, host: host, pid: Int(pid), heartbeatAgeMillis: max(0, now - heartbeat)))
            }
            let deliveries = try await self.client.query("""
                SELECT destination, count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'in_flight'), count(*) FILTER (WHERE state = 'dead')
                FROM relay_delivery GROUP BY destination ORDER BY destination
                """, logger: self.logger)
            for try await (name, pending, inFlight, dead) in deliveries.decode((String, Int64, Int64, Int64).self) {
                status.destinations.append(.init(name: name, pending: Int(pending), inFlight: Int(inFlight), dead: Int(dead)))
            }
            let days = try await self.client.query("""
                SELECT to_char(to_date(right(c.relname, 8), 'YYYYMMDD'), 'YYYY-MM-DD')
                FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'relay_event'::regclass AND c.relname ~ '^relay_event_[0-9]{8}$'
                ORDER BY 1
                """, logger: self.logger)
            for try await day in days.decode(String.self) { status.days.append(day) }
            return status
        }
    }

    /// Whether the schema exists at all (before the first migration it does not).
    func schemaExists() async throws -> Bool {
        try await integer(sql: "SELECT count(*)::bigint FROM information_schema.tables WHERE table_schema = '\(schema)' AND table_name = 'relay_schema'") == 1
    }
}

/// One attempt's outcome, waiting to be recorded.
struct DeliveryResult: Sendable {
    let claim: DeliveryClaim
    let resolution: AttemptResolution
    let now: Timestamp
    let maxBackoffMillis: Int64

    /// The delivery's state after it (`succeeded`, `pending` for a retry, `dead`) and when it is due.
    var state: String {
        switch resolution.next {
        case .succeeded: "succeeded"
        case .retry: "pending"
        case .dead: "dead"
        }
    }

    var due: Int64 {
        if case .retry(let at) = resolution.next { at.milliseconds } else { now.milliseconds }
    }
}
