import Foundation
import RelayCore
import RelayServer
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// README "Reconciliation", against a fake of FastSpring's events API that follows its
/// documented endpoints, Basic auth, paging and errors: events the provider holds unprocessed
/// are recovered, forwarded once and marked processed only once durable; an event that also
/// arrives by webhook is a duplicate either way; every error answer is survived.
@Suite struct ReconcileTests {
    static let environment = ["FS_API_USER": "api-user", "FS_API_PASS": "api-p4ss"]

    enum Store: String, CaseIterable, CustomStringConvertible {
        case journal, postgres
        var description: String { rawValue }

        func configuration() throws -> RelayServerConfiguration.Store {
            switch self {
            case .journal: .journal
            case .postgres: .postgres(try StoreKind.postgresURL(), schema: "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36))
            }
        }
    }

    static func routes(api: Int, sink: Int, every: String = "1h") -> String {
        """
        { "sources": { "fs": { "provider": "fastspring", "secret": "\(Fixtures.fastSpringSecret)",
                               "reconcile": { "url": "http://127.0.0.1:\(api)", "username": "env:FS_API_USER", "password": "env:FS_API_PASS", "every": "\(every)", "lookback": "3d", "timeout_ms": 2000 } } },
          "destinations": { "orders": { "url": "http://127.0.0.1:\(sink)/orders", "retry": { "initial_backoff_ms": 20, "max_backoff_ms": 40 } } },
          "routes": [ { "name": "all", "to": ["orders"] } ] }
        """
    }

    static func forwardedIDs(_ downstream: TestDownstream) -> [String] {
        downstream.requests.compactMap { try? JSONParser.parse($0.body)["events"]?.arrayValue?.first?["id"]?.stringValue }
    }

    @Test(.timeLimit(.minutes(2)), arguments: Store.allCases)
    func missedEventsAreRecoveredForwardedOnceAndMarkedAndErrorsAreSurvived(_ store: Store) async throws {
        let api = FakeFastSpringAPI()
        for i in 1...30 { api.add(id: "fs-\(i)") }  // more than one page of 25
        let apiPort = try await api.start()
        let downstream = TestDownstream()
        let sink = try await downstream.start()
        let relay = try await LiveRelay(routes: Self.routes(api: apiPort, sink: sink), environment: Self.environment, store: try store.configuration())
        let admin = ["--admin", "http://127.0.0.1:\(relay.adminPort)"]

        // The first pass runs at start: all 30 recovered, forwarded once, marked processed.
        #expect(await downstream.wait(timeout: .seconds(30)) { _ in Set(Self.forwardedIDs(downstream)).count == 30 }, "\(Self.forwardedIDs(downstream).count) forwarded")
        #expect(await eventually(timeout: .seconds(10)) { api.processed.count == 30 }, "\(api.processed.count) marked")
        #expect(api.requests.allSatisfy { !$0.contains("days=") } && api.requests.filter { $0.hasPrefix("GET /events/unprocessed?begin=") }.count >= 2, "paged: \(api.requests.prefix(3))")
        let listed = try await relay.admin("/admin/events?limit=100").json?["events"]?.arrayValue ?? []
        #expect(listed.count == 30 && listed.allSatisfy { $0["received_via"]?.stringValue == "reconcile" })
        var metrics = try await relay.metrics()
        #expect(sample(metrics, "relay_reconcile_runs_total", [#"source="fs""#, #"result="success""#]) == 1)
        #expect(sample(metrics, "relay_reconcile_recovered_total", [#"source="fs""#]) == 30)
        #expect((sample(metrics, "relay_reconcile_last_success_timestamp", [#"source="fs""#]) ?? 0) > 1_700_000_000)

        // The webhook for one of them arrives after all: a duplicate, not forwarded again.
        let late = Array("{\"events\":[{\"id\":\"fs-5\",\"type\":\"order.completed\",\"data\":{\"id\":\"ord-fs-5\"}}]}".utf8)
        let pushed = try await relay.post("fs", body: late, headers: [("X-FS-Signature", Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: late))])
        let duplicates = try JSONParser.parse(pushed.body)["duplicates"]?.doubleValue
        #expect(pushed.status == 200 && duplicates == 1)
        // And the other way: a webhook first (FastSpring still lists it), then a pass: had, marked, not stored.
        api.add(id: "fs-31")
        let first = Array("{\"events\":[{\"id\":\"fs-31\",\"type\":\"order.completed\",\"data\":{\"id\":\"ord-fs-31\"}}]}".utf8)
        #expect(try await relay.post("fs", body: first, headers: [("X-FS-Signature", Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: first))]).status == 200)
        let pass = try await runRelay(["reconcile", "--source", "fs", "--json"] + admin)
        let answer = try JSONParser.parse(Array(pass.out.utf8))
        #expect(pass.status == 0 && answer["provider_has"]?.doubleValue == 1 && answer["relay_had"]?.doubleValue == 1 && answer["stored"]?.doubleValue == 0 && answer["marked"]?.doubleValue == 1, "\(pass.out)\(pass.err)")
        #expect(api.processed.contains("fs-31"))

        // A dry run lists and leaves everything as it is.
        api.add(id: "fs-32")
        let dry = try await runRelay(["reconcile", "--source", "fs", "--dry-run"] + admin)
        #expect(dry.status == 0 && dry.out.contains("lists 1 event to reconcile") && dry.out.contains("fs-32"), "\(dry.out)\(dry.err)")
        let storedAfterDryRun = try await relay.admin("/admin/events?limit=1000").json?["events"]?.arrayValue ?? []
        #expect(!api.processed.contains("fs-32") && !storedAfterDryRun.contains { $0["provider_event_id"]?.stringValue == "fs-32" })

        // Error answers: each a failed pass with its reason (never the password), counted; ingest carries on.
        for (failure, says) in [(FakeFastSpringAPI.Failure.unauthorized, "check the reconcile username and password"), (.rateLimited(seconds: 7), "429"),
                                (.malformed, "not JSON"), (.unavailable, "503"), (.slow(milliseconds: 3_000), "timeout")] {
            api.failure = failure
            let failed = try await runRelay(["reconcile", "--source", "fs"] + admin)
            #expect(failed.status == 1 && failed.err.contains("502") && failed.err.contains(says) && !failed.err.contains("api-p4ss"), "\(failure): \(failed.err)")
        }
        let during = Array("{\"events\":[{\"id\":\"fs-40\",\"type\":\"order.completed\"}]}".utf8)
        #expect(try await relay.post("fs", body: during, headers: [("X-FS-Signature", Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: during))]).status == 200)
        // Stored but not marked (the mark failed): the next pass finds it stored and marks it.
        api.failure = .marksFail
        let unmarked = try await runRelay(["reconcile", "--source", "fs"] + admin)
        #expect(unmarked.status == 1 && unmarked.err.contains("POST /events/"), "\(unmarked.err)")
        api.failure = .none
        let finish = try await runRelay(["reconcile", "--source", "fs", "--json"] + admin)
        let finished = try JSONParser.parse(Array(finish.out.utf8))
        #expect(finished["relay_had"]?.doubleValue == 1 && finished["stored"]?.doubleValue == 0 && api.processed.contains("fs-32"), "\(finish.out)\(finish.err)")
        #expect(await downstream.wait(timeout: .seconds(20)) { _ in Self.forwardedIDs(downstream).contains("fs-40") && Self.forwardedIDs(downstream).contains("fs-32") })
        try await Task.sleep(for: .milliseconds(300))
        let counts = Dictionary(Self.forwardedIDs(downstream).map { ($0, 1) }, uniquingKeysWith: +)
        #expect(counts.values.allSatisfy { $0 == 1 } && counts.count == 33, "each forwarded once: \(counts.filter { $0.value > 1 })")
        metrics = try await relay.metrics()
        #expect(sample(metrics, "relay_reconcile_runs_total", [#"source="fs""#, #"result="failure""#]) == 6)
        #expect(!metrics.contains("api-p4ss"))
        #expect(!(try await TestHTTPClient.send(port: relay.adminPort, path: "/admin/routes").text.contains("api-p4ss")), "no credential in the config shown")

        // Bad requests.
        #expect(try await relay.admin("/admin/reconcile", method: "POST", body: Array(#"{"source":"nope"}"#.utf8)).status == 404)
        #expect(try await relay.admin("/admin/reconcile", method: "POST", body: Array(#"{"source":"fs","since":"forever"}"#.utf8)).status == 400)
        #expect(try await relay.admin("/admin/reconcile", method: "POST", body: Array(#"{"sauce":"fs"}"#.utf8)).status == 400)
        let badSince = try await runRelay(["reconcile", "--source", "fs", "--since", "40d"] + admin)
        #expect(badSince.status != 0 && badSince.err.contains("--since"), "\(badSince.err)")
        await relay.stop()
        await downstream.stop()
        await api.stop()
    }

    /// `kill -9` while the relay is marking what it stored: after the restart the next pass finds
    /// those events stored, marks them, and stores nothing twice.
    @Test(.timeLimit(.minutes(2)))
    func aKillBetweenStoreAndMarkIsFinishedByTheNextPass() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let api = FakeFastSpringAPI()
        for i in 1...3 { api.add(id: "k-\(i)") }
        api.failure = .marksHang(milliseconds: 20_000)
        let apiPort = try await api.start()
        let downstream = TestDownstream()
        let sink = try await downstream.start()
        let config = try dir.write("routes.json", Self.routes(api: apiPort, sink: sink, every: "1s"))
        func start(_ n: Int) async throws -> (RelayProcess, Int) {
            let process = try RelayProcess(
                arguments: ["serve", "--config", config, "--data", dir.path + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
                logPath: dir.path + "/relay\(n).log", environment: Self.environment
            )
            return (process, try await process.waitForPort(message: "admin listening"))
        }
        let (first, firstAdmin) = try await start(1)
        // Stored, forwarded (and the deliveries' outcomes journaled, so that at-least-once
        // redelivery after the kill does not blur the count), and a mark under way, hanging.
        #expect(await downstream.wait(timeout: .seconds(30)) { _ in Set(Self.forwardedIDs(downstream)) == ["k-1", "k-2", "k-3"] })
        #expect(await eventually(timeout: .seconds(10)) {
            let page = try? JSONParser.parse(try await TestHTTPClient.send(port: firstAdmin, path: "/admin/events?limit=100").body)
            return page?["events"]?.arrayValue?.filter { $0["delivery_state"]?.stringValue == "succeeded" }.count == 3
        })
        #expect(await eventually(timeout: .seconds(10)) { api.requests.contains { $0.hasPrefix("POST /events/") } })
        first.signal(SIGKILL)
        _ = await first.waitForExit()
        #expect(api.processed.isEmpty, "nothing was marked before the kill")
        api.failure = .none
        let (second, adminPort) = try await start(2)
        #expect(await eventually(timeout: .seconds(30)) { Set(api.processed) == ["k-1", "k-2", "k-3"] }, "\(api.processed)")
        let listed = try await TestHTTPClient.send(port: adminPort, path: "/admin/events?limit=100")
        #expect(try JSONParser.parse(listed.body)["events"]?.arrayValue?.count == 3, "nothing stored twice: \(listed.text)")
        try await Task.sleep(for: .milliseconds(300))
        #expect(Self.forwardedIDs(downstream).count == 3, "each forwarded once: \(Self.forwardedIDs(downstream))")
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0, "\(second.log)")
        await downstream.stop()
        await api.stop()
    }

    /// Runa: recent orders in a final state that the relay never got are stored as the
    /// `order.completion` Runa would have sent; an order's final status is forwarded once,
    /// whether the webhook came before or after the pass.
    @Test(.timeLimit(.minutes(2)), arguments: Store.allCases)
    func runaOrdersInAFinalStateAreRecoveredOnceWhicheverWayTheyArrive(_ store: Store) async throws {
        let api = FakeRunaAPI()
        api.add(id: "O-old", status: "COMPLETED", created: Date().addingTimeInterval(-5 * 86_400))  // before the 3-day lookback
        for i in 1...110 { api.add(id: "O-c\(i)", status: "COMPLETED", created: Date().addingTimeInterval(-3_600)) }
        api.add(id: "O-f", status: "FAILED", description: "spring rewards", totalPrice: "47.50")
        api.add(id: "O-p", status: "PROCESSING")
        let apiPort = try await api.start()
        let downstream = TestDownstream()
        let sink = try await downstream.start()
        let relay = try await LiveRelay(routes: """
        { "sources": { "runa": { "provider": "runa", "secret": "\(Fixtures.runaSecret)",
                                 "reconcile": { "url": "http://127.0.0.1:\(apiPort)", "api_key": "env:RUNA_API_KEY", "every": "1h", "lookback": "3d", "timeout_ms": 2000 } } },
          "destinations": { "orders": { "url": "http://127.0.0.1:\(sink)/orders" } },
          "routes": [ { "name": "all", "to": ["orders"] } ] }
        """, environment: ["RUNA_API_KEY": api.apiKey], store: try store.configuration())
        let admin = ["--admin", "http://127.0.0.1:\(relay.adminPort)"]
        func orderIDs() -> [String] { downstream.requests.compactMap { try? JSONParser.parse($0.body)["id"]?.stringValue } }
        func webhook(_ body: String) async throws -> TestHTTPClient.Response {
            let bytes = Array(body.utf8), now = Int64(Date().timeIntervalSince1970), id = "msg_\(UInt64.random(in: 0...UInt64.max))"
            return try await relay.post("runa", body: bytes, headers: [
                ("Content-Type", "application/json"), ("svix-id", id), ("svix-timestamp", "\(now)"),
                ("svix-signature", Fixtures.svixSignature(secret: Fixtures.runaSecret, id: id, timestamp: now, body: bytes)),
            ])
        }

        // The first pass at start: 110 completed and 1 failed order (two pages), not the one
        // still processing nor the one older than the lookback.
        #expect(await downstream.wait(timeout: .seconds(30)) { _ in Set(orderIDs()).count == 111 }, "\(Set(orderIDs()).count) forwarded")
        #expect(!orderIDs().contains("O-p") && !orderIDs().contains("O-old"))
        #expect(api.requests.filter { $0.hasPrefix("GET /order?") }.count >= 2, "\(api.requests)")
        let failed = try await relay.admin("/admin/events?limit=1&status=FAILED").json?["events"]?.arrayValue?.first
        #expect(failed?["type"]?.stringValue == "order.completion" && failed?["received_via"]?.stringValue == "reconcile"
            && failed?["provider_event_id"]?.stringValue == "order:O-f:FAILED" && failed?["order_id"]?.stringValue == "O-f", "\(String(describing: failed))")
        let recovered = try #require(downstream.requests.first { (try? JSONParser.parse($0.body)["id"]?.stringValue) == "O-f" })
        #expect(try JSONParser.parse(recovered.body)["total_price"]?.stringValue == "47.50", "the order as the API has it is the body")

        // Its webhook comes late: one event, not forwarded again.
        let late = try await webhook(#"{"id":"O-f","status":"FAILED"}"#)
        let lateDuplicates = try JSONParser.parse(late.body)["duplicates"]?.doubleValue
        #expect(late.status == 200 && lateDuplicates == 1, "\(late.text)")
        // A webhook first, then the order shows up in a pass: the relay had it.
        #expect(try await webhook(#"{"id":"O-new","status":"COMPLETED"}"#).status == 200)
        api.add(id: "O-new", status: "COMPLETED")
        let pass = try await runRelay(["reconcile", "--source", "runa", "--json"] + admin)
        let answer = try JSONParser.parse(Array(pass.out.utf8))
        #expect(pass.status == 0 && answer["provider_has"]?.doubleValue == 112 && answer["relay_had"]?.doubleValue == 112 && answer["stored"]?.doubleValue == 0, "\(pass.out)\(pass.err)")
        // Errors: a failed pass with the reason, never the key.
        for (failure, says) in [(FakeRunaAPI.Failure.unauthorized, "check the reconcile api_key"), (.malformed, "not JSON"), (.rateLimited(seconds: 3), "429"), (.slow(milliseconds: 3_000), "timeout")] {
            api.failure = failure
            let failedPass = try await runRelay(["reconcile", "--source", "runa"] + admin)
            #expect(failedPass.status == 1 && failedPass.err.contains(says) && !failedPass.err.contains(api.apiKey), "\(failure): \(failedPass.err)")
        }
        api.failure = .none
        try await Task.sleep(for: .milliseconds(300))
        let counts = Dictionary(orderIDs().map { ($0, 1) }, uniquingKeysWith: +)
        #expect(counts.count == 112 && counts.values.allSatisfy { $0 == 1 }, "each order forwarded once: \(counts.filter { $0.value > 1 })")
        #expect(!(try await relay.metrics()).contains(api.apiKey))
        await relay.stop()
        await downstream.stop()
        await api.stop()
    }

    /// `enrich: runa-order`: a FAILED Runa order (its webhook carries only id and status) reaches
    /// the alerts destination with the order's description and total from Runa's API; while the
    /// API fails, the delivery is retried by its policy; a final order is fetched once.
    @Test(.timeLimit(.minutes(2)))
    func aFailedRunaOrderReachesAlertsWithTheOrdersDetails() async throws {
        let api = FakeRunaAPI()
        api.add(id: "O-9", status: "FAILED", description: "spring \"rewards\" batch 7", totalPrice: "47.50")
        api.failure = .unavailable  // also keeps the start-up pass from recovering O-9 itself
        let apiPort = try await api.start()
        let downstream = TestDownstream()
        let sink = try await downstream.start()
        let relay = try await LiveRelay(routes: #"""
        { "sources": { "runa": { "provider": "runa", "secret": "\#(Fixtures.runaSecret)",
                                 "reconcile": { "url": "http://127.0.0.1:\#(apiPort)", "api_key": "env:RUNA_API_KEY", "every": "1h", "timeout_ms": 2000 } } },
          "destinations": { "alerts": { "url": "http://127.0.0.1:\#(sink)/alerts", "enrich": "runa-order",
                                        "retry": { "max_attempts": 50, "initial_backoff_ms": 50, "max_backoff_ms": 100 },
                                        "body_template": "{\"text\":\"Runa order {{order_id}} {{status}}: {{order.description}} ({{order.total_price}} {{order.currency}})\"}" } },
          "routes": [ { "name": "failed", "match": { "status": "FAILED" }, "to": ["alerts"] } ] }
        """#, environment: ["RUNA_API_KEY": api.apiKey])
        let body = Array(#"{"id":"O-9","status":"FAILED"}"#.utf8), now = Int64(Date().timeIntervalSince1970)
        let posted = try await relay.post("runa", body: body, headers: [
            ("Content-Type", "application/json"), ("svix-id", "msg_enrich"), ("svix-timestamp", "\(now)"),
            ("svix-signature", Fixtures.svixSignature(secret: Fixtures.runaSecret, id: "msg_enrich", timestamp: now, body: body)),
        ])
        let eventID = try #require(try JSONParser.parse(posted.body)["ids"]?.arrayValue?.first?.stringValue)
        // The API is down: attempts fail and are retried, nothing reaches alerts.
        let retried = try await eventually(timeout: .seconds(20)) {
            let attempts = try await relay.admin("/admin/events/\(eventID)").json?["attempts"]?.arrayValue ?? []
            return attempts.count >= 2 && attempts.allSatisfy { $0["outcome"]?.stringValue == "retry" && ($0["error"]?.stringValue ?? "").contains("enrich runa-order") }
        }
        let attemptsSoFar = try await relay.admin("/admin/events/\(eventID)").json?["attempts"]
        #expect(retried, "\(String(describing: attemptsSoFar))")
        #expect(downstream.requests.isEmpty)
        api.failure = .none
        #expect(await downstream.wait(timeout: .seconds(20)) { $0.count == 1 })
        let alert = try JSONParser.parse(try #require(downstream.requests.first).body)["text"]?.stringValue
        #expect(alert == #"Runa order O-9 FAILED: spring "rewards" batch 7 (47.50 USD)"#, "\(alert ?? "no text")")
        // A second send of the same (final) order uses the cached order.
        let fetches = api.requests.filter { $0 == "GET /order/O-9" }.count
        let retry = try await runRelay(["destinations", "retry", "\(eventID):alerts", "--admin", "http://127.0.0.1:\(relay.adminPort)"])
        #expect(retry.status == 0, "\(retry.err)")
        #expect(await downstream.wait(timeout: .seconds(20)) { $0.count == 2 })
        #expect(api.requests.filter { $0 == "GET /order/O-9" }.count == fetches, "fetched again: \(api.requests)")
        let shown = try await relay.admin("/admin/events/\(eventID)").json.map(JSONWriter.serialize) ?? ""
        #expect(!shown.contains(api.apiKey))
        await relay.stop()
        await downstream.stop()
        await api.stop()
    }
}
