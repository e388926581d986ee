import Foundation
import RelayCore
import RelayForwarder
import RelayPostgres
import RelayServer
import RelayTesting
import Testing

/// The whole relay on the PostgreSQL store (the test cluster, a schema of its own): webhooks
/// in over HTTP, de-duplicated, delivered, retried, and visible in the admin API.
@Suite struct PostgresHTTPTests {
    func postgresStore() throws -> RelayServerConfiguration.Store {
        .postgres(try StoreKind.postgresURL(), schema: "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36))
    }

    @Test(.timeLimit(.minutes(1)))
    func eventsAreStoredDeduplicatedDeliveredAndListed() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(
            routes: forwardingRoutes(["orders": fastRetry("http://127.0.0.1:\(port)/orders")], routes: #"[{"name": "all", "to": ["orders"]}]"#),
            store: try postgresStore()
        )
        var ids: [String] = []
        for i in 0..<20 {
            let response = try await relay.post("shop", body: Array("{\"id\":\"pg\(i)\",\"type\":\"order.paid\"}".utf8))
            #expect(response.status == 200)
            ids += try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        #expect(Set(ids).count == 20)
        // A provider retry is the same event.
        let again = try await relay.post("shop", body: Array(#"{"id":"pg3","type":"order.paid"}"#.utf8))
        #expect(try JSONParser.parse(again.body)["ids"]?.arrayValue?.compactMap(\.stringValue) == [ids[3]])
        let delivered = await downstream.wait(timeout: .seconds(30)) { Set($0.compactMap { $0.header("webhook-id") }) == Set(ids) }
        #expect(delivered, "delivered \(downstream.requests.count) of 20")
        #expect(downstream.requests.count == 20, "each once")
        let succeeded = await eventually(timeout: .seconds(30)) { await relay.server.scheduler.status(of: "orders")?.succeeded == 20 }
        #expect(succeeded)
        let page = try await relay.admin("/admin/events?limit=50")
        #expect(page.status == 200)
        let listed = page.json?["events"]?.arrayValue ?? []
        #expect(listed.compactMap { $0["id"]?.stringValue } == ids.reversed(), "newest first")
        #expect(listed.allSatisfy { $0["delivery_state"]?.stringValue == "succeeded" })
        await relay.stop()
        await downstream.stop()
    }

    /// The console's counts come from the database: an instance that stored and delivered
    /// nothing itself shows the other's events and attempts.
    @Test(.timeLimit(.minutes(1)))
    func everyInstanceShowsTheWholeRelaysMinuteCounts() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let routes = forwardingRoutes(["orders": fastRetry("http://127.0.0.1:\(port)/orders")], routes: #"[{"name": "all", "to": ["orders"]}]"#)
        let store = try postgresStore()
        let busy = try await LiveRelay(routes: routes, store: store)
        for i in 0..<5 {
            let response = try await busy.post("shop", body: Array("{\"id\":\"act\(i)\",\"type\":\"order.paid\"}".utf8))
            #expect(response.status == 200)
        }
        #expect(await downstream.wait(timeout: .seconds(30)) { $0.count >= 5 })
        // Started after the work was done: its own counts are empty.
        let idle = try await LiveRelay(routes: routes, store: store)
        let counted = try await eventually(timeout: .seconds(30)) {
            let minutes = try await idle.admin("/admin/activity").json?["minutes"]?.arrayValue ?? []
            let events = minutes.reduce(0) { $0 + Int($1["events"]?.doubleValue ?? 0) }
            let succeeded = minutes.reduce(0) { $0 + Int($1["succeeded"]?.doubleValue ?? 0) }
            return minutes.count == 60 && events == 5 && succeeded == 5
        }
        #expect(counted, "the idle instance shows the busy one's events and deliveries")
        let orders = try await idle.admin("/admin/destinations").json?["destinations"]?.arrayValue?.first { $0["name"]?.stringValue == "orders" }
        #expect(orders?["attempts_5m"]?.doubleValue == 5 && orders?["success_rate_5m"]?.doubleValue == 1 && orders?["p99_ms_5m"]?.doubleValue != nil, "\(String(describing: orders))")
        await idle.stop()
        await busy.stop()
        await downstream.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func aFailingDestinationIsRetriedUntilItAnswers() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(
            routes: forwardingRoutes(["flaky": fastRetry("http://127.0.0.1:\(port)/flaky/2")], routes: #"[{"name": "all", "to": ["flaky"]}]"#),
            store: try postgresStore()
        )
        let response = try await relay.post("shop", body: Array(#"{"id":"r1","type":"order.paid"}"#.utf8))
        let id = try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
        let done = await eventually(timeout: .seconds(30)) { await relay.server.scheduler.status(of: "flaky")?.succeeded == 1 }
        #expect(done)
        let detail = try #require(try await relay.admin("/admin/events/\(id)").json)
        let statuses = detail["attempts"]?.arrayValue?.compactMap { $0["status"]?.doubleValue.map(Int.init) } ?? []
        #expect(statuses.suffix(1) == [204] && statuses.count == 3, "attempts: \(statuses)")
        await relay.stop()
        await downstream.stop()
    }

    /// A replay lives in the database: started on one instance, its progress is visible on
    /// another, and when the first stops the other takes it over and finishes it.
    @Test(.timeLimit(.minutes(1)))
    func aReplayStartedOnOneInstanceIsFinishedByAnother() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let routes = forwardingRoutes(["orders": fastRetry("http://127.0.0.1:\(port)/orders")], routes: #"[{"name": "all", "to": ["orders"]}]"#)
        let store = try postgresStore()
        let first = try await LiveRelay(routes: routes, store: store)
        let second = try await LiveRelay(routes: routes, store: store)
        var ids: [String] = []
        for i in 0..<24 {
            let response = try await (i % 2 == 0 ? first : second).post("shop", body: Array("{\"id\":\"rp\(i)\",\"type\":\"order.paid\"}".utf8))
            ids += try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        #expect(await downstream.wait(timeout: .seconds(30)) { $0.count >= 24 })
        func replayed() -> Set<String> {
            Set(downstream.requests.filter { $0.header("x-relay-replay") == "1" }.compactMap { $0.header("webhook-id") })
        }
        // Slow enough that the first instance is stopped part way.
        let started = try await first.admin(
            "/admin/replay", method: "POST", body: Array(#"{"filter": {"source": "shop"}, "rate_per_s": 8, "concurrency": 1}"#.utf8)
        )
        #expect(started.status == 202)
        let replayID = try #require(started.json?["replay_id"]?.stringValue)
        #expect(await downstream.wait(timeout: .seconds(20)) { _ in replayed().count >= 3 })
        let seen = try await second.admin("/admin/replays/\(replayID)")
        #expect(seen.status == 200 && seen.json?["state"]?.stringValue == "running", "visible on the other instance: \(String(describing: seen.json))")
        #expect(seen.json?["deliveries"]?.doubleValue == 24)
        await first.stop(keepSchema: true)
        let before = replayed().count
        #expect(before < 24, "stopped part way (\(before) sent)")
        #expect(await downstream.wait(timeout: .seconds(30)) { _ in replayed() == Set(ids) }, "the second instance sent the rest")
        let done = await eventually(timeout: .seconds(20)) {
            (try? await second.admin("/admin/replays/\(replayID)").json?["state"]?.stringValue) == "finished"
        }
        #expect(done)
        let status = try #require(try await second.admin("/admin/replays/\(replayID)").json)
        #expect(status["succeeded"]?.doubleValue == 24 && status["dead"]?.doubleValue == 0, "\(status)")
        await second.stop()
        await downstream.stop()
    }

    /// The database crashes (`pg_ctl stop -m immediate`) under ingest load and starts again:
    /// every request answered 2xx is in the database and delivered; the others were 503s; the
    /// relay reconnects by itself and acknowledges again. The relay is the real binary in a
    /// process of its own, as operators run it.
    @Test(.timeLimit(.minutes(2)))
    func aDatabaseCrashUnderLoadLosesNothingAcknowledged() async throws {
        try await ThrowawayPostgres.with { cluster in
            let downstream = TestDownstream()
            let port = try await downstream.start()
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try directory.write("routes.json", forwardingRoutes(["orders": fastRetry("http://127.0.0.1:\(port)/orders", attempts: 50)], routes: #"[{"name": "all", "to": ["orders"]}]"#))
            let process = try RelayProcess(
                arguments: ["serve", "--config", directory.path + "/routes.json", "--data", directory.path + "/data", "--listen", "127.0.0.1:0",
                            "--admin-listen", "127.0.0.1:0", "--store", "postgres://postgres@127.0.0.1:\(cluster.port)/postgres?sslmode=disable"],
                logPath: directory.path + "/relay.log"
            )
            defer { process.signal(SIGKILL) }
            let ingestPort = try await process.waitForPort(message: "ingest listening")
            let body: @Sendable (String) -> [UInt8] = { id in Array("{\"id\":\"\(id)\",\"type\":\"order.paid\"}".utf8) }
            let phase = Shared(0)  // 0 before the crash, 1 down, 2 started again
            let answers = Shared<[(id: String, status: Int, phase: Int, relayID: String)]>([])
            // Paced (at most about 80 requests a second): load enough to be mid-commit at the
            // crash, not so much that the tests running beside this one starve.
            let clients = 4
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<clients {
                    group.addTask {
                        var n = 0
                        while phase.withLock({ $0 }) < 3 {
                            let id = "crash-\(client)-\(n)"
                            n += 1
                            var status = 0  // no answer: neither acknowledged nor refused
                            var relayID = ""
                            if let response = try? await TestHTTPClient.send(
                                port: ingestPort, method: "POST", path: "/webhooks/shop", headers: [("Content-Type", "application/json")], body: body(id)
                            ) {
                                status = response.status
                                relayID = (try? JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue) ?? ""
                            }
                            let now = phase.withLock { $0 }
                            answers.withLock { $0.append((id, status, now, relayID)) }
                            try? await Task.sleep(for: .milliseconds(50))
                        }
                    }
                }
                func acknowledged(after: Int) -> Int { answers.withLock { $0.filter { $0.status == 200 && $0.phase >= after }.count } }
                #expect(try #require(await eventually(timeout: .seconds(20)) { acknowledged(after: 0) >= 20 }))
                try await cluster.stop(immediate: true)
                phase.withLock { $0 = 1 }
                #expect(try #require(await eventually(timeout: .seconds(20)) { answers.withLock { $0.contains { $0.phase == 1 && $0.status == 503 } } }), "503 while down")
                try await cluster.start()
                phase.withLock { $0 = 2 }
                #expect(try #require(await eventually(timeout: .seconds(30)) { acknowledged(after: 2) >= 20 }), "acknowledging again after the restart")
                phase.withLock { $0 = 3 }
                try await group.waitForAll()
            }
            let all = answers.withLock { $0 }
            #expect(all.allSatisfy { [0, 200, 503].contains($0.status) }, "only 200s and 503s: \(Set(all.map(\.status)))")
            let acknowledged = Set(all.filter { $0.status == 200 }.map(\.id))
            // Every acknowledged event is in the database, and delivered.
            let stored = try await PostgresHTTPTests.providerIDs(url: try cluster.url)
            #expect(acknowledged.isSubset(of: stored), "lost: \(acknowledged.subtracting(stored).sorted().prefix(5))")
            let acknowledgedRelayIDs = Set(all.filter { $0.status == 200 }.map(\.relayID))
            let delivered = await downstream.wait(timeout: .seconds(60)) { requests in
                acknowledgedRelayIDs.isSubset(of: Set(requests.compactMap { $0.header("webhook-id") }))
            }
            #expect(delivered)
            process.signal(SIGTERM)
            #expect(await process.waitForExit() == 0)
            await downstream.stop()
        }
    }

    /// The provider ids of every event in a store's default schema.
    static func providerIDs(url: PostgresURL) async throws -> Set<String> {
        let store = try PostgresStore(url: url, schema: "relay", maxConnections: 2, logger: makeTestLogger())
        let running = Task { await store.run() }
        defer { running.cancel() }
        var ids: Set<String> = []
        var cursor: String?
        repeat {
            let page = try await store.page(filter: EventFilter(), cursor: cursor, limit: 1_000)
            ids.formUnion(page.events.map(\.event.providerEventID))
            cursor = page.nextCursor
        } while cursor != nil
        return ids
    }

    @Test(.timeLimit(.minutes(1)))
    func aStoreThatCannotBeReachedStopsTheStartWithAnError() async throws {
        let url = try PostgresURL("postgres://relay:secret@127.0.0.1:\(unusedLoopbackPort())/relay?sslmode=disable")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let routes = forwardingRoutes([:], routes: "[]")
        var configuration = RelayServerConfiguration(
            configPath: try directory.write("routes.json", routes), dataDirectory: directory.path,
            listen: .init(host: "127.0.0.1", port: 0), adminListen: .init(host: "127.0.0.1", port: 0), store: .postgres(url, schema: "relay")
        )
        configuration.storeTimeout = .seconds(2)
        let server = try RelayServer(configuration: configuration, config: try RelayConfig.parse(Array(routes.utf8), file: "routes.json", environment: [:]), logger: makeTestLogger())
        do {
            try await server.run(handleSignals: false)
            Issue.record("the relay started without its database")
        } catch {
            #expect("\(error)".contains("cannot reach PostgreSQL"), "\(error)")
            #expect(!"\(error)".contains("secret"), "the password is not in the error")
        }
        #expect(server.ingestPort == nil, "nothing listened")
    }
}

/// `relay store migrate|status` against the test cluster.
@Suite(.timeLimit(.minutes(2))) struct StoreCommandTests {
    @Test func migrateThenStatusShowsTheVersionInstancesAndDeliveries() async throws {
        let url = try StoreKind.postgresURL()
        let text = try #require(ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES_URL"])
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let before = try await runRelay(["store", "status", "--schema", schema], environment: ["RELAY_STORE": text])
        #expect(before.status == 0 && before.out.contains("version 0"), "\(before)")
        let migrate = try await runRelay(["store", "migrate", "--store", text, "--schema", schema])
        #expect(migrate.status == 0, "\(migrate)")
        #expect(migrate.out.contains("schema \(schema) at version"))
        let status = try await runRelay(["store", "status", "--store", text, "--schema", schema])
        #expect(status.status == 0 && status.out.contains("instances: 0") && status.out.contains("deliveries:"), "\(status)")
        // Migration makes today's and tomorrow's partitions.
        let today = String(ISO8601DateFormatter().string(from: Date()).prefix(10))
        #expect(status.out.contains("days: 2 partitions, \(today) to "), "\(status.out)")
        #expect(before.out.contains("days: none"), "\(before.out)")
        #expect(!status.out.contains("version 0"))
        let bad = try await runRelay(["store", "status", "--store", "postgres://u:hunter2@h:99999/db"])
        #expect(bad.status == 2 && bad.err.contains("--store: port") && !bad.err.contains("hunter2"), "\(bad)")
        await dropPostgresSchema(url: url, schema: schema)
    }
}
