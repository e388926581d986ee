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
@Suite struct StoreCommandTests {
    @Test func migrateThenStatusShowsTheVersionInstancesAndDeliveries() async throws {
        let url = try StoreKind.postgresURL()
        let text = try #require(ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES_URL"])
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let before = try runRelay(["store", "status", "--schema", schema], environment: ["RELAY_STORE": text])
        #expect(before.status == 0 && before.out.contains("version 0"), "\(before)")
        let migrate = try runRelay(["store", "migrate", "--store", text, "--schema", schema])
        #expect(migrate.status == 0, "\(migrate)")
        #expect(migrate.out.contains("schema \(schema) at version"))
        let status = try runRelay(["store", "status", "--store", text, "--schema", schema])
        #expect(status.status == 0 && status.out.contains("instances: 0") && status.out.contains("deliveries:"), "\(status)")
        #expect(!status.out.contains("version 0"))
        let bad = try runRelay(["store", "status", "--store", "postgres://u:hunter2@h:99999/db"])
        #expect(bad.status == 2 && bad.err.contains("--store: port") && !bad.err.contains("hunter2"), "\(bad)")
        await dropPostgresSchema(url: url, schema: schema)
    }
}
