import Foundation
import Logging
import RelayCore
@testable import RelayPostgres
import RelayTesting
import Synchronization
import Testing

/// The PostgreSQL store against the test cluster (`RELAY_TEST_POSTGRES_URL`, started by
/// scripts/test): schema migration and the settings its guarantees rest on.
@Suite struct PostgresStoreTests {
    static let logger = Logger(label: "postgres-test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` with a running store in a new schema, dropped afterwards.
    func withStore<T: Sendable>(
        url: PostgresURL? = nil, schema: String = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36), prepare: Bool = true,
        _ body: (PostgresStore) async throws -> T
    ) async throws -> T {
        let store = try PostgresStore(url: try url ?? StoreKind.postgresURL(), schema: schema, maxConnections: 4, logger: Self.logger)
        let running = Task { await store.run() }
        defer { running.cancel() }
        do {
            if prepare { try await store.prepare() }
            let result = try await body(store)
            _ = try? await store.dropSchema()
            return result
        } catch {
            _ = try? await store.dropSchema()
            throw error
        }
    }

    /// The end of a replay that the database cannot record at that moment (it is down) is
    /// recorded once the database is back, by the same instance: the replay does not show as
    /// running for good on every other instance.
    @Test(.timeLimit(.minutes(2)))
    func theEndOfAReplayIsRecordedOnceTheDatabaseIsBack() async throws {
        try await ThrowawayPostgres.with { cluster in
            let store = try PostgresStore(url: try cluster.url, schema: "relay", maxConnections: 2, callLimit: .seconds(1), logger: Self.logger)
            let running = Task { await store.run() }
            defer { running.cancel() }
            try await store.prepare()
            let deliveries = PostgresDeliveryStore(store: store, instance: "owner")
            let started = Timestamp(seconds: 1_800_000_000)
            try await deliveries.saveReplay(StoredReplay(id: "rpl_down", matchedEvents: 0, concurrency: 1, ratePerSecond: nil, startedAt: started, total: 0, remaining: []))
            #expect(await deliveries.replayStatus(id: "rpl_down")?.running == true)
            try await cluster.stop()
            await deliveries.finishReplay(id: "rpl_down", at: started)
            try await cluster.start()
            let recorded = await eventually(timeout: .seconds(30)) { await deliveries.replayStatus(id: "rpl_down")?.running == false }
            #expect(recorded, "the end was recorded after the database came back")
        }
    }

    @Test func instancesStartingAtOnceMigrateOnce() async throws {
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let url = try StoreKind.postgresURL()
        try await withStore(schema: schema, prepare: false) { observer in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let store = try PostgresStore(url: url, schema: schema, maxConnections: 2, logger: Self.logger)
                        let running = Task { await store.run() }
                        defer { running.cancel() }
                        try await store.prepare()
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await observer.integer(sql: "SELECT count(*)::bigint FROM relay_schema") == Int64(PostgresSchema.migrations.count))
            #expect(try await observer.integer(sql: "SELECT max(version)::bigint FROM relay_schema") == Int64(PostgresSchema.latest))
            // Preparing again changes nothing.
            try await observer.prepare()
            #expect(try await observer.integer(sql: "SELECT count(*)::bigint FROM relay_schema") == Int64(PostgresSchema.migrations.count))
        }
    }

    /// A role whose default is `synchronous_commit = off` still commits synchronously through
    /// the store: the store sets it on every connection, so a 2xx always means flushed to disk.
    @Test func everyConnectionCommitsSynchronouslyWhateverTheRoleDefault() async throws {
        let url = try StoreKind.postgresURL()
        let role = "r_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        try await withStore { admin in
            try await admin.execute(sql: "CREATE ROLE \(role) LOGIN SUPERUSER")
            try await admin.execute(sql: "ALTER ROLE \(role) SET synchronous_commit = off")
            var asRole = url
            asRole.user = role
            asRole.password = nil
            let setting = try await withStore(url: asRole) { store in
                try await store.text(sql: "SHOW synchronous_commit")
            }
            try await admin.execute(sql: "DROP ROLE \(role)")
            #expect(setting == "on")
        }
    }

    func resolve(_ claim: DeliveryClaim, status: Int, now: Timestamp) -> AttemptResolution {
        AttemptResolution.resolve(
            AttemptResolution.Facts(status: status, durationMillis: 2), eventSequence: claim.event.sequence, eventID: claim.eventID,
            destination: claim.destination, attempt: claim.attempts + 1, since: claim.receivedAt, now: now, policy: RetryPolicy(), random: { $0 }
        )
    }

    /// Two instances claiming at once from the same lanes never hold the same delivery, and
    /// together hold no more than `max_in_flight`.
    @Test func twoClaimersNeverHoldTheSameDelivery() async throws {
        try await withStore { store in
            let events = TestEvents()
            _ = try await store.store((0..<300).map { events.candidate("c\($0)", to: ["a", "b"]) })
            let destinations = ["a": DestinationConfig(name: "a", url: "http://127.0.0.1:9/a", maxInFlight: 250), "b": DestinationConfig(name: "b", url: "http://127.0.0.1:9/b", maxInFlight: 1_000)]
            let first = PostgresDeliveryStore(store: store, instance: "one")
            let second = PostgresDeliveryStore(store: store, instance: "two")
            await first.configure(destinations)
            await second.configure(destinations)
            let now = Timestamp(milliseconds: events.start.milliseconds + 60_000)
            async let a = (0..<20).asyncFlatMap { _ in await first.claim(now: now).claims }
            async let b = (0..<20).asyncFlatMap { _ in await second.claim(now: now).claims }
            let (byFirst, bySecond) = await (a, b)
            let keys = (byFirst + bySecond).map { "\($0.event.sequence)/\($0.destination)" }
            #expect(Set(keys).count == keys.count, "a delivery held twice")
            #expect(keys.filter { $0.hasSuffix("/a") }.count == 250, "a: max_in_flight 250 across both instances")
            #expect(keys.filter { $0.hasSuffix("/b") }.count == 300)
            #expect(!byFirst.isEmpty || !bySecond.isEmpty)
        }
    }

    /// Per-key ordering holds across instances: two instances claiming at once never hold two
    /// deliveries of one key, and each key's next goes out (to either) only after its earlier
    /// one finished, in receive order.
    @Test func twoInstancesNeverSendOneKeysDeliveriesAtOnce() async throws {
        try await withStore { store in
            let events = TestEvents()
            // 200 events over 20 keys, received in index order.
            let candidates = (0..<200).map { index in
                var candidate = events.candidate("q\(index)", at: Int64(index), to: ["ordered"])
                candidate.decision.orderingKeys = ["ordered": "k\(index % 20)"]
                return candidate
            }
            _ = try await store.store(candidates)
            var ordered = DestinationConfig(name: "ordered", url: "http://127.0.0.1:9/o", maxInFlight: 100)
            ordered.ordering = DeliveryOrdering(key: .orderID)
            let first = PostgresDeliveryStore(store: store, instance: "one")
            let second = PostgresDeliveryStore(store: store, instance: "two")
            await first.configure(["ordered": ordered])
            await second.configure(["ordered": ordered])
            let now = Timestamp(milliseconds: events.start.milliseconds + 60_000)
            var sent: [String: [String]] = [:]
            let index = Dictionary(uniqueKeysWithValues: candidates.map { ($0.event.id, $0.event.providerEventID) })
            for round in 0..<12 {
                async let a = (0..<3).asyncFlatMap { _ in await first.claim(now: now).claims }
                async let b = (0..<3).asyncFlatMap { _ in await second.claim(now: now).claims }
                let (byFirst, bySecond) = await (a, b)
                let claims = byFirst + bySecond
                let keys = claims.compactMap { index[$0.eventID] }.map { "k\((Int($0.dropFirst()) ?? -1) % 20)" }
                #expect(Set(keys).count == keys.count, "round \(round): one key handed out twice: \(keys.sorted())")
                #expect(claims.count == (round < 10 ? 20 : 0), "round \(round): every key's next, once the one before finished")
                for claim in byFirst { await first.complete(claim, resolve(claim, status: 204, now: now), now: now, maxBackoffMillis: 60_000) }
                for claim in bySecond { await second.complete(claim, resolve(claim, status: 204, now: now), now: now, maxBackoffMillis: 60_000) }
                for claim in claims {
                    guard let provider = index[claim.eventID], let number = Int(provider.dropFirst()) else { continue }
                    sent["k\(number % 20)", default: []].append(provider)
                }
            }
            for key in 0..<20 {
                #expect(sent["k\(key)"] == Array(stride(from: key, to: 200, by: 20)).map { "q\($0)" }, "k\(key) in receive order")
            }
        }
    }

    /// A rate limit holds for the destination as a whole: two instances claiming (and replaying)
    /// at once share one bucket in its row.
    @Test func twoInstancesShareOneRateLimit() async throws {
        try await withStore { store in
            let events = TestEvents()
            _ = try await store.store((0..<100).map { events.candidate("r\($0)", to: ["slow"]) })
            var slow = DestinationConfig(name: "slow", url: "http://127.0.0.1:9/slow", maxInFlight: 5)
            slow.ratePerSecond = 20  // a token every 50 ms, bursts of 5
            let first = PostgresDeliveryStore(store: store, instance: "one")
            let second = PostgresDeliveryStore(store: store, instance: "two")
            await first.configure(["slow": slow])
            await second.configure(["slow": slow])
            let now = Timestamp(milliseconds: events.start.milliseconds + 60_000)
            // The full bucket: one burst of 5 between both instances.
            async let a = (0..<5).asyncFlatMap { _ in await first.claim(now: now).claims }
            async let b = (0..<5).asyncFlatMap { _ in await second.claim(now: now).claims }
            let burst = await a + b
            #expect(burst.count == 5)
            for claim in burst { await first.complete(claim, resolve(claim, status: 204, now: now), now: now, maxBackoffMillis: 60_000) }
            // Slots are free again, tokens are not: nothing, from either instance or a replay.
            let (none1, none2) = (await first.claim(now: now).claims, await second.claim(now: now).claims)
            #expect(none1.isEmpty && none2.isEmpty)
            #expect(await second.takeReplayToken("slow", now: now) != nil)
            // 100 ms later: two tokens, between both instances and a replay.
            let later = Timestamp(milliseconds: now.milliseconds + 100)
            async let c = (0..<5).asyncFlatMap { _ in await first.claim(now: later).claims.map { _ in 1 } }
            async let d = (0..<5).asyncFlatMap { _ in await second.claim(now: later).claims.map { _ in 1 } }
            async let e = (0..<5).asyncFlatMap { _ in await first.takeReplayToken("slow", now: later) == nil ? [1] : [] }
            let granted = await c + d + e
            #expect(granted.count == 2, "\(granted.count) attempts allowed in 100 ms at 20/s")
            #expect((await first.statuses()["slow"]?.rateLimited ?? 0) > 0)
        }
    }

    /// A claim whose holder stopped heartbeating is rescued and claimed again; the first
    /// holder's late result is recorded as fenced and changes nothing.
    @Test func aLateResultFromALostClaimIsFenced() async throws {
        try await withStore { store in
            let events = TestEvents()
            let candidate = events.candidate("f1", to: ["a"])
            _ = try await store.store([candidate])
            let destinations = ["a": DestinationConfig(name: "a", url: "http://127.0.0.1:9/a")]
            let lost = PostgresDeliveryStore(store: store, instance: "lost")
            let rescuer = PostgresDeliveryStore(store: store, instance: "rescuer")
            await lost.configure(destinations)
            await rescuer.configure(destinations)
            let now = Timestamp(milliseconds: events.start.milliseconds + 1_000)
            let old = try #require(await lost.claim(now: now).claims.first)
            #expect(await rescuer.claim(now: now).claims.isEmpty, "held by the first")
            // "lost" never heartbeated: the rescue moves its claim on.
            try await rescuer.rescue()
            let new = try #require(await rescuer.claim(now: now).claims.first)
            #expect(new.event == old.event && new.token != old.token)
            await lost.complete(old, resolve(old, status: 204, now: now), now: now, maxBackoffMillis: 60_000)
            var lane = try #require(await rescuer.statuses()["a"])
            #expect(lane.inFlight == 1 && lane.succeeded == 0, "the fenced result changed nothing")
            #expect(try await store.integer(sql: "SELECT count(*)::bigint FROM relay_attempt WHERE fenced") == 1)
            await rescuer.complete(new, resolve(new, status: 204, now: now), now: now, maxBackoffMillis: 60_000)
            lane = try #require(await rescuer.statuses()["a"])
            #expect(lane.inFlight == 0 && lane.pending == 0 && lane.succeeded == 1)
            #expect(try await store.detail(id: candidate.event.id)?.summary.deliveryState == .succeeded)
        }
    }

    /// Events stored by one instance wake another at once by NOTIFY, though it polls only
    /// once an hour; the notification is sent after the commit, so it names committed work.
    @Test func eventsStoredByOneInstanceWakeAnother() async throws {
        try await withStore { writer in
            let url = try StoreKind.postgresURL()
            let reader = try PostgresStore(url: url, schema: writer.schema, maxConnections: 4, logger: Self.logger)
            let readerPool = Task { await reader.run() }
            defer { readerPool.cancel() }
            let deliveries = PostgresDeliveryStore(store: reader, instance: "reader", pollInterval: .seconds(3_600))
            let wakes = Mutex(0)
            let following = Task { await deliveries.run(newWork: { wakes.withLock { $0 += 1 } }, replaysNeed: ReplayFloor()) }
            // The first poll and the start of listening each wake it once.
            #expect(try #require(await eventually { wakes.withLock { $0 } >= 2 }))
            let before = wakes.withLock { $0 }
            _ = try await writer.store([TestEvents().candidate("n1", to: ["a"])])
            #expect(try #require(await eventually { wakes.withLock { $0 } > before }), "woken by the other instance's NOTIFY")
            await deliveries.close()
            await following.value
        }
    }

    /// A database that accepts the connection and never answers (hung, or cut off after the
    /// handshake) costs an ingest request its call limit, then a 503-class error: never a hang.
    /// A claim gives up the same way and asks to be tried again.
    @Test(.timeLimit(.minutes(1)))
    func aDatabaseThatNeverAnswersFailsCallsAtTheirLimit() async throws {
        let silent = try SilentListener()
        let url = try PostgresURL("postgres://relay@127.0.0.1:\(silent.port)/relay?sslmode=disable")
        let (logger, log) = makeLogger()
        let store = try PostgresStore(url: url, schema: "t_silent", maxConnections: 2, callLimit: .milliseconds(300), logger: logger)
        let pool = Task { await store.run() }
        defer { pool.cancel() }
        do {
            _ = try await store.store([TestEvents().candidate("s1", to: ["a"])])
            Issue.record("stored without a database")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.httpStatus == 503)
        }
        // Ended by the call limit (not the connect timeout, 5 s, or never: the time limit).
        #expect(log.messages.contains { "\($0.metadata["error"] ?? "")".contains("did not answer an ingest commit within 0.3 seconds") }, "\(log.messages)")
        // A request queued behind a commit that fails is refused with it, not after a commit
        // (and a call limit) of its own: one failed commit answers both.
        let failedBefore = log.messages.filter { "\($0.metadata["error"] ?? "")".contains("did not answer an ingest commit") }.count
        let first = Task { try await store.store([TestEvents().candidate("s2", to: ["a"])]) }
        try await Task.sleep(for: .milliseconds(100))
        let second = Task { try await store.store([TestEvents().candidate("s3", to: ["a"])]) }
        for request in [first, second] {
            do {
                _ = try await request.value
                Issue.record("stored without a database")
            } catch {
                #expect((error as? IngestError)?.httpStatus == 503)
            }
        }
        let failedAfter = log.messages.filter { "\($0.metadata["error"] ?? "")".contains("did not answer an ingest commit") }.count
        #expect(failedAfter - failedBefore == 1, "one commit tried for both requests: \(failedAfter - failedBefore)")
        let deliveries = PostgresDeliveryStore(store: store, instance: "silent")
        await deliveries.configure(["a": DestinationConfig(name: "a", url: "http://127.0.0.1:9/a")])
        let now = Timestamp(milliseconds: 1_000)
        let batch = await deliveries.claim(now: now)
        #expect(batch.claims.isEmpty && batch.nextDue != nil, "a failed claim asks to be tried again")
    }

    /// Retention drops a day's partitions whole once the day ended more than the retention ago
    /// and nothing in it is unfinished; a day with a pending delivery is held until it finishes.
    /// De-duplication keys expire after their window, so a provider id seen long ago is new.
    /// A cancelled `run` (a shutdown by cancellation, or a test's time limit) ends without
    /// `close()`, and its maintenance loop with it: before, both went on, and a sleep that no
    /// longer waited made them spin, holding the cooperative threads for the maintenance
    /// interval (a minute), which froze every other task of the process.
    @Test(.timeLimit(.minutes(1)))
    func aCancelledRunEndsWithoutClose() async throws {
        try await withStore { store in
            let deliveries = PostgresDeliveryStore(
                store: store, instance: "cancelled", retention: PostgresRetention(store: store, retentionMillis: 0), maintenanceInterval: .seconds(3_600)
            )
            let ended = Shared(false)
            let running = Task {
                await deliveries.run(newWork: {}, replaysNeed: ReplayFloor())
                ended.withLock { $0 = true }
            }
            try await Task.sleep(for: .milliseconds(300))
            running.cancel()
            #expect(await eventually(timeout: .seconds(20)) { ended.withLock { $0 } }, "run ended after its cancellation")
        }
    }

    @Test func retentionDropsFinishedOldDaysAndHoldsUnfinishedOnes() async throws {
        try await withStore { store in
            let day: Int64 = 86_400_000
            let now = Timestamp(milliseconds: 1_800_000_000_000)
            let events = TestEvents(start: Timestamp(milliseconds: now.milliseconds - 40 * day))
            let delivered = events.candidate("old-delivered", at: 0)
            let pending = events.candidate("old-pending", at: 5 * day)
            let recent = events.candidate("recent", at: 39 * day)
            _ = try await store.store([delivered, pending, recent])
            let deliveries = PostgresDeliveryStore(store: store, instance: "retention")
            await deliveries.configure(["a": DestinationConfig(name: "a", url: "http://127.0.0.1:9/a")])
            // Deliver the oldest event (the others stay pending: claimed, then given back).
            let claims = await deliveries.claim(now: now).claims
            #expect(claims.count == 3)
            for claim in claims {
                if claim.eventID == delivered.event.id {
                    await deliveries.complete(claim, resolve(claim, status: 204, now: now), now: now, maxBackoffMillis: 60_000)
                } else {
                    await deliveries.release(claim)
                }
            }
            let retention = PostgresRetention(store: store, retentionMillis: 30 * day)
            let first = try #require(try await retention.pass(now: now))
            // Its day, and the empty days made at start (around the real date, before `now`).
            #expect(first.droppedDays.contains(PostgresStore.day(of: delivered.event.receivedAt.milliseconds)))
            #expect(!first.droppedDays.contains(PostgresStore.day(of: pending.event.receivedAt.milliseconds)))
            #expect(!first.droppedDays.contains(PostgresStore.day(of: recent.event.receivedAt.milliseconds)))
            #expect(first.heldDays == [PostgresStore.day(of: pending.event.receivedAt.milliseconds)])
            #expect(retention.heldDays == 1)
            #expect(first.expiredKeys == 2, "the two keys older than 7 days")
            #expect(try await store.detail(id: delivered.event.id) == nil, "its day was dropped")
            #expect(try await store.detail(id: pending.event.id) != nil, "held")
            #expect(try await store.detail(id: recent.event.id) != nil)
            // An expired key is new again; a recent one is still a duplicate.
            let again = try await store.store([events.candidate("old-pending", at: 40 * day - 1_000), events.candidate("recent", at: 40 * day - 1_000)])
            #expect(again.map { if case .stored = $0 { "stored" } else { "duplicate" } } == ["stored", "duplicate"])
            // Once the held day's delivery finishes, the next pass drops it.
            let rest = await deliveries.claim(now: now).claims.filter { $0.eventID == pending.event.id }
            let last = try #require(rest.first)
            await deliveries.complete(last, resolve(last, status: 204, now: now), now: now, maxBackoffMillis: 60_000)
            let second = try #require(try await retention.pass(now: now))
            #expect(second.droppedDays == [PostgresStore.day(of: pending.event.receivedAt.milliseconds)] && second.heldDays.isEmpty)
            #expect(retention.heldDays == 0)
            #expect(try await store.detail(id: pending.event.id) == nil)
            #expect(try await store.detail(id: recent.event.id) != nil)
        }
    }

    /// A day's partitions dropped elsewhere (another instance's retention) while this instance
    /// still counts the day as made: the next batch for that day makes them again and is stored,
    /// not refused.
    @Test func aDayDroppedElsewhereIsMadeAgainForTheNextBatch() async throws {
        try await withStore { store in
            let start = Timestamp(milliseconds: 1_800_000_000_000)
            let events = TestEvents(start: start)
            _ = try await store.store([events.candidate("first")])
            let day = PostgresStore.day(of: start.milliseconds)
            try await store.execute(sql: """
                DO $$ DECLARE d text := to_char(timestamp '1970-01-01' + \(day) * interval '1 day', 'YYYYMMDD');
                BEGIN EXECUTE format('DROP TABLE relay_delivery_%s, relay_attempt_%s, relay_event_%s', d, d, d); END $$
                """)
            #expect(try await store.integer(sql: "SELECT count(*)::bigint FROM relay_event") == 0)
            let second = events.candidate("second", at: 1_000)
            let outcomes = try await store.store([second])
            #expect(outcomes.map { if case .stored = $0 { "stored" } else { "duplicate" } } == ["stored"])
            #expect(try await store.detail(id: second.event.id) != nil)
        }
    }

    /// A database made by an earlier version (version 3, before day partitions) keeps its
    /// events, deliveries and attempts through the migration to partitioned tables.
    @Test func migratingFromUnpartitionedTablesKeepsEverything() async throws {
        try await withStore(prepare: false) { store in
            try await PostgresSchema.migrate(store, upTo: 3)
            let events = TestEvents()
            let event = events.candidate("m1", to: ["a"]).event
            let body = "'\\x" + event.encoded().map { String(format: "%02x", $0) }.joined() + "'::bytea"
            let decision = "'\\x" + RoutingDecision(eventID: event.id, configVersion: "v1", routes: ["r"], destinations: ["a"]).encoded().map { String(format: "%02x", $0) }.joined() + "'::bytea"
            try await store.execute(sql: """
                INSERT INTO relay_event (id, received_at, source, provider, type, status, provider_event_id, event, decision)
                VALUES ('\(event.id)', \(event.receivedAt.milliseconds), 'shop', 'generic', 'order.paid', 'COMPLETED', 'm1', \(body), \(decision))
                """)
            try await store.execute(sql: "INSERT INTO relay_delivery (event_seq, destination, state, attempts, due_at) VALUES (1, 'a', 'dead', 3, 0)")
            let record = DeliveryRecord(
                eventSequence: 1, eventID: event.id, destination: "a", attempt: 3, time: event.receivedAt, outcome: .dead, status: 500, error: "HTTP 500",
                durationMillis: 3, nextDue: nil
            )
            let encoded = "'\\x" + record.encoded().map { String(format: "%02x", $0) }.joined() + "'::bytea"
            try await store.execute(sql: "INSERT INTO relay_attempt (event_seq, destination, replay_id, record) VALUES (1, 'a', '', \(encoded))")
            try await store.prepare()
            #expect(try await store.integer(sql: "SELECT max(version)::bigint FROM relay_schema") == Int64(PostgresSchema.latest))
            #expect(try await store.integer(sql: "SELECT count(*)::bigint FROM relay_attempt") == 1)
            let detail = try #require(try await store.detail(id: event.id))
            #expect(detail.summary.deliveries.map(\.state) == [.dead])
            #expect(detail.attempts == [record])
            #expect(try await store.integer(sql: "SELECT count(*)::bigint FROM pg_inherits WHERE inhparent = 'relay_event'::regclass") ?? 0 >= 1)
            // New events continue the sequence.
            let outcome = try await store.store([events.candidate("m2", at: 1_000)])
            guard case .stored(let id) = outcome.first else { Issue.record("not stored: \(outcome)"); return }
            #expect(try await store.detail(id: id)?.summary.sequence == 2)
        }
    }
}

extension Sequence where Element: Sendable {
    /// Runs `transform` on each element in turn and joins the results.
    func asyncFlatMap<T>(_ transform: (Element) async -> [T]) async -> [T] {
        var result: [T] = []
        for element in self { result += await transform(element) }
        return result
    }
}
