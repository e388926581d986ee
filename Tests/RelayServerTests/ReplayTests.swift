import Foundation
import RelayCore
import RelayServer
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

private func json(_ text: String) -> [UInt8] { Array(text.utf8) }

private func replayID(_ answer: (status: Int, json: JSONValue?)) -> String? { answer.json?["replay_id"]?.stringValue }

/// Waits (bounded) for a replay to finish and returns its progress.
func finished(_ relay: LiveRelay, _ id: String, timeout: Duration = .seconds(60)) async throws -> JSONValue? {
    var status: JSONValue?
    let done = try await eventually(timeout: timeout) {
        status = try await relay.admin("/admin/replays/\(id)").json
        return status?["state"]?.stringValue == "finished"
    }
    return done ? status : nil
}

@Suite(.timeLimit(.minutes(3))) struct ReplayTests {
    static func routes(a: String, b: String = "http://127.0.0.1:9/b", to: String = "a") -> String {
        """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "status": "/status" } } },
          "destinations": { "a": { "url": "\(a)", "retry": { "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20 } },
                            "b": { "url": "\(b)", "retry": { "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20 } } },
          "routes": [ { "name": "main", "to": ["\(to)"] } ] }
        """
    }

    @Test func dryRunCountsAndSendsNothing() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: Self.routes(a: "http://127.0.0.1:\(port)/a"))
        defer { Task { await relay.stop(); await downstream.stop() } }
        for i in 0..<5 { _ = try await relay.post("shop", body: json("{\"id\":\"e\(i)\",\"type\":\"order.x\",\"status\":\"\(i < 2 ? "FAILED" : "OK")\"}")) }
        #expect(await downstream.wait { $0.count == 5 })
        // Outcomes are journaled just after the answer: wait for all five.
        let before = try await relay.storedDeliveries(atLeast: 5).count
        #expect(before == 5)
        let answer = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"status":"FAILED"},"dry_run":true}"#))
        #expect(answer.status == 200)
        #expect(answer.json?["matched_events"]?.doubleValue == 2)
        #expect(answer.json?["deliveries"]?["a"]?.doubleValue == 2)
        #expect(answer.json?["sample"]?.arrayValue?.count == 2)
        #expect(answer.json?["replay_id"]?.stringValue == nil)
        // A real replay of the same filter, asked for after the dry run: once it has finished,
        // anything the dry run had sent would be at the downstream and in the journal too.
        let real = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"status":"FAILED"}}"#))
        #expect(try await finished(relay, try #require(replayID(real)))?["succeeded"]?.doubleValue == 2)
        let outcomes = try await relay.storedDeliveries(atLeast: before + 2)
        #expect(downstream.requests.count == 5 + 2, "the dry run sent nothing")
        #expect(outcomes.count == before + 2, "and journaled nothing")
        await relay.stop()
        await downstream.stop()
    }

    @Test func badReplayRequestsAreRefusedWithTheField() async throws {
        let relay = try await LiveRelay(routes: Self.routes(a: "http://127.0.0.1:9/a"))
        defer { Task { await relay.stop() } }
        let cases: [(String, String)] = [
            ("{}", "filter"),
            (#"{"filter":{}}"#, "filter"),
            (#"{"filter":{"id":""}}"#, "filter"),
            (#"{"filter":{"source":" ","type":","}}"#, "filter"),
            (#"{"filter":{"status":"X"},"rate_per_s":1e-20}"#, "rate_per_s"),
            (#"{"filter":{"stauts":"FAILED"}}"#, "filter.stauts"),
            (#"{"filter":{"since":"soon"}}"#, "filter.since"),
            (#"{"filter":{"status":"X"},"routing":"later"}"#, "routing"),
            (#"{"filter":{"status":"X"},"destinations":["nope"]}"#, "nope"),
            (#"{"filter":{"status":"X"},"rate_per_s":-1}"#, "rate_per_s"),
            (#"{"filter":{"status":"X"},"config":{"sources":{}}}"#, "config"),
            (#"{"filter":{"status":"X"},"dry_run":true,"config":{"sources":"x"}}"#, "config"),
            ("not json", "body"),
        ]
        for (body, field) in cases {
            let answer = try await relay.admin("/admin/replay", method: "POST", body: json(body))
            #expect(answer.status == 400, "\(body)")
            #expect(answer.json?["error"]?.stringValue?.contains(field) == true, "\(body): \(String(describing: answer.json))")
        }
        await relay.stop()
    }

    /// The journal, or PostgreSQL in a schema of the test's own: replay, backtests, reload and
    /// the delivery retry route work the same on both.
    static func store(_ kind: StoreKind) throws -> RelayServerConfiguration.Store {
        kind == .postgres ? .postgres(try StoreKind.postgresURL(), schema: "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)) : .journal
    }

    @Test(arguments: [StoreKind.journal, .postgres])
    func routingOriginalVersusCurrentAfterARulesChangeAndABacktest(_ kind: StoreKind) async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let base = "http://127.0.0.1:\(port)"
        let relay = try await LiveRelay(routes: Self.routes(a: base + "/a", b: base + "/b", to: "a"), store: try Self.store(kind))
        defer { Task { await relay.stop(); await downstream.stop() } }
        for i in 0..<3 { _ = try await relay.post("shop", body: json("{\"id\":\"r\(i)\",\"type\":\"order.x\",\"status\":\"OK\"}")) }
        #expect(await downstream.wait { $0.count == 3 })
        #expect(downstream.requests(at: "/a").count == 3)
        // The rules change: everything goes to b now.
        try Self.routes(a: base + "/a", b: base + "/b", to: "b").write(toFile: relay.configPath, atomically: true, encoding: .utf8)
        #expect(try await relay.admin("/admin/routes/reload", method: "POST").status == 200)

        // A backtest with a third file routes to a again, without sending anything.
        let backtest = try await relay.admin("/admin/replay", method: "POST", body: json(
            #"{"filter":{"type":"order.*"},"dry_run":true,"config":"# + Self.routes(a: base + "/a", b: base + "/b", to: "a") + "}"
        ))
        #expect(backtest.status == 200, "\(String(describing: backtest.json))")
        #expect(backtest.json?["deliveries"]?["a"]?.doubleValue == 3)
        #expect(backtest.json?["deliveries"]?["b"] == nil)

        let original = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"type":"order.*"},"routing":"original"}"#))
        #expect(original.status == 202)
        #expect(try await finished(relay, try #require(replayID(original)))?["succeeded"]?.doubleValue == 3)
        #expect(downstream.requests(at: "/a").count == 6)
        #expect(downstream.requests(at: "/b").isEmpty)

        let current = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"type":"order.*"},"routing":"current"}"#))
        #expect(try await finished(relay, try #require(replayID(current)))?["succeeded"]?.doubleValue == 3)
        #expect(downstream.requests(at: "/b").count == 3)
        #expect(downstream.requests(at: "/a").count == 6)
        // Replayed requests keep the event's webhook-id and say they are replays.
        let firstIDs = downstream.requests(at: "/a").prefix(3).compactMap { $0.header("webhook-id") }
        #expect(Set(downstream.requests(at: "/b").compactMap { $0.header("webhook-id") }) == Set(firstIDs))
        #expect(downstream.requests(at: "/b").allSatisfy { $0.header("x-relay-replay") == "1" })
        #expect(downstream.requests(at: "/a").prefix(3).allSatisfy { $0.header("x-relay-replay") == nil })
        await relay.stop()
        await downstream.stop()
    }

    @Test(arguments: [StoreKind.journal, .postgres])
    func retryingOneDeliverySendsItOnceMore(_ kind: StoreKind) async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: Self.routes(a: "http://127.0.0.1:\(port)/a"), store: try Self.store(kind))
        defer { Task { await relay.stop(); await downstream.stop() } }
        let response = try await relay.post("shop", body: json(#"{"id":"one","type":"t","status":"OK"}"#))
        let id = try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
        #expect(await downstream.wait { $0.count == 1 })
        // The outcome is stored just after the answer: wait for it before listing.
        var deliveries: [JSONValue] = []
        #expect(try await eventually {
            deliveries = try await relay.admin("/admin/deliveries?state=succeeded&destination=a").json?["deliveries"]?.arrayValue ?? []
            return !deliveries.isEmpty
        })
        #expect(deliveries.compactMap { $0["id"]?.stringValue } == ["\(id):a"])
        let retry = try await relay.admin("/admin/deliveries/\(id):a/retry", method: "POST")
        #expect(retry.status == 202)
        #expect(try await finished(relay, try #require(replayID(retry)))?["succeeded"]?.doubleValue == 1)
        #expect(downstream.requests.count == 2)
        #expect(downstream.requests.last?.header("webhook-id") == id)
        #expect(try await relay.admin("/admin/deliveries/\(id):zzz/retry", method: "POST").status == 404)
        #expect(try await relay.admin("/admin/deliveries/nocolon/retry", method: "POST").status == 400)
        #expect(try await relay.admin("/admin/deliveries?state=lost").status == 400)
        await relay.stop()
        await downstream.stop()
    }

    /// A large replay to a slow destination runs in its own lane: live deliveries to the same
    /// destination keep their own slots and are not queued behind the replay. Checked by count,
    /// not by time: were live deliveries in the replay's queue, each would wait for hundreds of
    /// replayed requests; in their own lane only the replay requests already in flight or about
    /// to start come between a live event's receipt and its delivery. (Latency figures belong
    /// in `scripts/bench`, not in a test a loaded machine can break.)
    @Test(.timeLimit(.minutes(3)))
    func aLargeReplayDoesNotStarveLiveDeliveries() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let base = "http://127.0.0.1:\(port)"
        let routes = """
        { "sources": { "bulk": { "provider": "generic", "fields": { "id": "/id" } }, "live": { "provider": "generic", "fields": { "id": "/id" } } },
          "destinations": { "slow": { "url": "\(base)/slow/20", "max_in_flight": 4 }, "fast": { "url": "\(base)/fast" } },
          "routes": [ { "name": "bulk", "match": { "source": "bulk" }, "to": ["slow"] }, { "name": "live", "match": { "source": "live" }, "to": ["slow"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop(); await downstream.stop() } }
        for chunk in 0..<20 {
            let batch = (0..<50).map { "{\"id\":\"b\(chunk)-\($0)\"}" }
            for body in batch { _ = try await relay.post("bulk", body: json(body)) }
        }
        // Counted by webhook-id: at least once allows a repeat (an answer lost to a timeout on a loaded machine).
        func distinct(_ requests: [TestDownstream.Received], replayed: Bool) -> Int {
            Set(requests.filter { ($0.header("x-relay-replay") == "1") == replayed }.compactMap { $0.header("webhook-id") }).count
        }
        #expect(await downstream.wait(timeout: .seconds(60)) { distinct($0, replayed: false) == 1000 })
        let replay = try await relay.admin("/admin/replay", method: "POST", body: json(#"{"filter":{"source":"bulk"},"concurrency":8}"#))
        let id = try #require(replayID(replay))
        func replayed() -> Int { downstream.requests.filter { $0.header("x-relay-replay") == "1" }.count }
        // 1000 deliveries at 20 ms or more each, 8 at a time. Live events arrive meanwhile; each
        // sample counts only if the replay was still running after it was delivered.
        var interleaved: [Int] = []
        var latencies: [Duration] = []
        for i in 0..<40 {
            let replayedBefore = replayed()
            let sent = ContinuousClock.now
            _ = try await relay.post("live", body: json("{\"id\":\"live-\(i)\"}"))
            try #require(await downstream.wait(timeout: .seconds(60)) { distinct($0, replayed: false) == 1000 + i + 1 })
            let latency = ContinuousClock.now - sent
            let between = replayed() - replayedBefore
            guard try await relay.admin("/admin/replays/\(id)").json?["state"]?.stringValue == "running" else { break }
            interleaved.append(between)
            latencies.append(latency)
        }
        try #require(interleaved.count >= 5, "only \(interleaved.count) live events were delivered while the replay ran")
        latencies.sort()
        print("live delivery during a 1000-event replay: \(latencies.count) samples, p50 \(latencies[latencies.count / 2]), max \(latencies.last ?? .zero); replayed requests between a live event's receipt and its delivery: max \(interleaved.max() ?? 0)")
        #expect((interleaved.max() ?? 0) <= 200, "a live delivery waited behind \(interleaved.max() ?? 0) replayed requests: \(interleaved)")
        #expect(try await finished(relay, id)?["succeeded"]?.doubleValue == 1000)
        await relay.stop()
        await downstream.stop()
    }
}

/// The outage, end to end with the real binary and `relay replay`: a destination is down, its
/// deliveries die, it comes back, and `relay replay --delivery-state dead` sends each missed
/// event exactly once more, with its webhook-id, and nothing to the destination that had them.
@Suite(.timeLimit(.minutes(3))) struct OutageReplayTests {
    @Test(.timeLimit(.minutes(2)))
    func replayDeadDeliversEachMissedEventExactlyOnceMore() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let healthy = TestDownstream()
        let healthyPort = try await healthy.start()
        let outagePort = unusedLoopbackPort()
        try dir.write("routes.json", """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "status": "/status" } } },
          "destinations": { "orders": { "url": "http://127.0.0.1:\(healthyPort)/orders" },
                            "alerts": { "url": "http://127.0.0.1:\(outagePort)/alerts", "retry": { "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20 } } },
          "routes": [ { "name": "all", "to": ["orders"] }, { "name": "failed", "match": { "status": "FAILED" }, "to": ["alerts"] } ] }
        """)
        let process = try RelayProcess(
            arguments: ["serve", "--config", dir.path + "/routes.json", "--data", dir.path + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            logPath: dir.path + "/relay.log"
        )
        let ingest = try await process.waitForPort(message: "ingest listening")
        let admin = try await process.waitForPort(message: "admin listening")
        var failed: Set<String> = []
        for i in 0..<12 {
            let status = i % 3 == 0 ? "FAILED" : "COMPLETED"
            let response = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", body: json("{\"id\":\"o\(i)\",\"status\":\"\(status)\"}"))
            let id = try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
            if status == "FAILED" { failed.insert(id) }
        }
        #expect(await healthy.wait { $0.count == 12 })
        // Wait until the alerts deliveries are dead.
        let adminURL = "http://127.0.0.1:\(admin)"
        var dead: [String] = []
        try #require(await eventually(timeout: .seconds(30)) {
            let list = try await runRelay(["events", "list", "--delivery-state", "dead", "--json", "--admin", adminURL])
            dead = (try JSONParser.parse(Array(list.out.utf8))["events"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
            return dead.count == failed.count
        }, "the alerts deliveries did not all die within 30 s: \(dead)")
        #expect(Set(dead) == failed)

        // The alerts service comes back; the operator replays what it missed.
        let alerts = TestDownstream()
        _ = try await alerts.start(port: outagePort)
        let dry = try await runRelay(["replay", "--delivery-state", "dead", "--dry-run", "--admin", adminURL])
        #expect(dry.status == 0, "\(dry.err)")
        #expect(dry.out.contains("4 events matched, 4 deliveries"), "\(dry.out)")
        let replay = try await runRelay(["replay", "--delivery-state", "dead", "--wait", "--admin", adminURL])
        #expect(replay.status == 0, "\(replay.err)")
        #expect(replay.out.contains("finished: 4 succeeded, 0 dead"), "\(replay.out)")
        let received = alerts.requests.compactMap { $0.header("webhook-id") }
        #expect(received.count == failed.count, "each missed event exactly once")
        #expect(Set(received) == failed)
        #expect(alerts.requests.allSatisfy { $0.header("x-relay-replay") == "1" })
        #expect(healthy.requests.count == 12, "nothing more to the destination that had them")
        // A backtest: where would the stored events go under a routes file not deployed yet?
        try dir.write("new-routes.json", """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "status": "/status" } } },
          "destinations": { "orders": { "url": "http://127.0.0.1:9/orders" }, "audit": { "url": "http://127.0.0.1:9/audit" } },
          "routes": [ { "name": "completed", "match": { "status": "COMPLETED" }, "to": ["orders", "audit"] } ] }
        """)
        let backtest = try await runRelay(["replay", "--dry-run", "--config", dir.path + "/new-routes.json", "--since", "1h", "--admin", adminURL])
        #expect(backtest.status == 0, "\(backtest.err)")
        #expect(backtest.out.contains("12 events matched, 16 deliveries"), "\(backtest.out)")
        #expect(backtest.out.contains("audit        8") || backtest.out.contains("audit  8"), "\(backtest.out)")
        let sent = try await runRelay(["replay", "--config", dir.path + "/new-routes.json", "--since", "1h", "--admin", adminURL])
        #expect(sent.status != 0 && sent.err.contains("dry runs"), "a routes file that is not deployed is only for dry runs: \(sent.err)")
        #expect(healthy.requests.count == 12 && alerts.requests.count == 4, "the backtest sent nothing")
        // Replaying dead deliveries again finds none.
        let again = try await runRelay(["replay", "--delivery-state", "dead", "--dry-run", "--admin", adminURL])
        #expect(again.out.contains("0 events matched"), "\(again.out)")
        process.signal(SIGTERM)
        #expect(await process.waitForExit() == 0)
        await alerts.stop()
        await healthy.stop()
    }
}
