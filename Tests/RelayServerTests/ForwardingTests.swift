import Foundation
import RelayCore
import RelayForwarder
import RelayServer
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif


/// routes.json with a generic source and the given destinations (name → JSON object) and routes.
func forwardingRoutes(_ destinations: [String: String], routes: String) -> String {
    let dests = destinations.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ",")
    return """
    { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "status": "/status" } },
                   "fastspring": { "provider": "fastspring", "secret": "\(Fixtures.fastSpringSecret)" } },
      "destinations": { \(dests) },
      "routes": \(routes) }
    """
}

func fastRetry(_ url: String, attempts: Int = 10, extra: String = "") -> String {
    "{ \"url\": \"\(url)\", \"retry\": { \"max_attempts\": \(attempts), \"initial_backoff_ms\": 20, \"max_backoff_ms\": 60 }\(extra) }"
}

@Suite struct ForwardingTests {
    @Test func fansOutEachEventToItsDestinationsWithRelayHeaders() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: forwardingRoutes(
            ["orders": fastRetry("http://127.0.0.1:\(port)/orders"),
             "alerts": fastRetry("http://127.0.0.1:\(port)/alerts", extra: #", "body_template": "{\"text\":\"{{provider}} order {{order_id}} {{status}}\"}""#)],
            routes: #"[{"name": "all", "match": {"type": "order.*"}, "to": ["orders"]}, {"name": "failed", "match": {"status": "FAILED"}, "to": ["alerts"]}]"#
        ))
        let vector = Fixtures.fastSpringVectors[1]
        let response = try await relay.post("fastspring", body: try Fixtures.bytes(vector.file), headers: [("X-FS-Signature", vector.signature), ("Content-Type", "application/json")])
        #expect(response.status == 200)
        let ids = try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        // Once all four deliveries are journaled as finished, nothing more will be sent: the
        // downstream's requests can then be counted exactly.
        let records = try await relay.storedDeliveries(atLeast: 4)
        #expect(records.count == 4 && records.allSatisfy { $0.outcome == .succeeded && $0.attempt == 1 })
        let orders = downstream.requests(at: "/orders")
        #expect(Set(orders.compactMap { $0.header("webhook-id") }) == Set(ids))
        #expect(orders.allSatisfy { $0.header("x-relay-attempt") == "1" && $0.header("x-relay-source") == "fastspring" && $0.header("x-relay-provider") == "fastspring" })
        // Each FastSpring event arrives alone in FastSpring's own envelope.
        #expect(try orders.allSatisfy { try JSONParser.parse($0.body)["events"]?.arrayValue?.count == 1 })
        let alerts = downstream.requests(at: "/alerts")
        #expect(alerts.count == 1, "exactly the failed order goes to alerts")
        #expect(try JSONParser.parse(alerts.first?.body ?? [])["text"]?.stringValue == "fastspring order Wd7Kx2Pm9Bq4Lz1Nv6TcHs FAILED")
        await relay.stop()
        await downstream.stop()
    }

    @Test func retriesWithBackoffUntilTheDestinationAccepts() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: forwardingRoutes(["flaky": fastRetry("http://127.0.0.1:\(port)/flaky/2")], routes: #"[{"name": "all", "to": ["flaky"]}]"#))
        #expect(try await relay.post("shop", body: Array(#"{"id":"o1","type":"order.paid"}"#.utf8)).status == 200)
        // The third outcome journaled is the success: no attempt comes after it.
        let outcomes = try await relay.storedDeliveries(atLeast: 3)
        #expect(outcomes.map(\.outcome) == [.retry, .retry, .succeeded])
        let attempts = downstream.requests.map { $0.header("x-relay-attempt") }
        #expect(attempts == ["1", "2", "3"])
        #expect(Set(downstream.requests.compactMap { $0.header("webhook-id") }).count == 1, "the same webhook-id on every retry")
        #expect(outcomes.first?.status == 503)
        await relay.stop()
        await downstream.stop()
    }

    @Test func retryAfterIsHonouredAndAttemptsAreBounded() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: forwardingRoutes(
            ["limited": "{ \"url\": \"http://127.0.0.1:\(port)/retry-after/1\", \"retry\": { \"max_attempts\": 2, \"initial_backoff_ms\": 10, \"max_backoff_ms\": 5000 } }"],
            routes: #"[{"name": "all", "to": ["limited"]}]"#
        ))
        #expect(try await relay.post("shop", body: Array(#"{"id":"o2"}"#.utf8)).status == 200)
        // Once the second outcome (dead) is journaled nothing more is sent.
        let records = try await relay.storedDeliveries(atLeast: 2)
        #expect(records.map(\.outcome) == [.retry, .dead])
        let times = downstream.requests.map(\.time)
        try #require(times.count == 2, "max_attempts 2: exactly two attempts, got \(times.count)")
        #expect(times[1] - times[0] >= .milliseconds(950), "waited for Retry-After: 1 (\(times[1] - times[0]))")
        #expect(records.last?.error.contains("max_attempts") == true)
        await relay.stop()
        await downstream.stop()
    }

    @Test func permanentFailuresAreDeadAtOnceAnd410PausesTheDestination() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: forwardingRoutes(
            ["bad": fastRetry("http://127.0.0.1:\(port)/status/400"), "gone": fastRetry("http://127.0.0.1:\(port)/status/410")],
            routes: #"[{"name": "all", "to": ["bad", "gone"]}]"#
        ))
        #expect(try await relay.post("shop", body: Array(#"{"id":"p1"}"#.utf8)).status == 200)
        #expect(await downstream.wait { $0.count == 2 })
        #expect(try await relay.post("shop", body: Array(#"{"id":"p2"}"#.utf8)).status == 200)
        // p2's delivery to the paused destination is taken up by the scheduler and held: pending,
        // nothing in flight, and nothing sent after the 410.
        let records = try await relay.storedDeliveries(atLeast: 3)
        let held = await eventually {
            let status = await relay.server.scheduler.status(of: "gone")
            return status?.paused == true && status?.pending == 1 && status?.inFlight == 0
        }
        let gone = await relay.server.scheduler.status(of: "gone")
        try #require(held, "p2's delivery to the paused destination was not held: \(String(describing: gone))")
        #expect(downstream.requests(at: "/status/410").count == 1, "a paused destination gets nothing more")
        #expect(records.filter { $0.destination == "bad" }.map(\.outcome) == [.dead, .dead])
        #expect(records.filter { $0.destination == "gone" }.map(\.pausedDestination) == [true])
        await relay.stop()
        await downstream.stop()
    }

    @Test func connectionErrorsAndTimeoutsAreRetried() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: forwardingRoutes(
            ["down": fastRetry("http://127.0.0.1:\(unusedLoopbackPort())/x", attempts: 2),
             "slow": fastRetry("http://127.0.0.1:\(port)/slow/2000", attempts: 2, extra: #", "timeout_ms": 150"#)],
            routes: #"[{"name": "all", "to": ["down", "slow"]}]"#
        ))
        #expect(try await relay.post("shop", body: Array(#"{"id":"c1"}"#.utf8)).status == 200)
        var records: [DeliveryRecord] = []
        try #require(await eventually(timeout: .seconds(30)) {
            records = try relay.storedDeliveries()
            return records.filter { $0.outcome == .dead }.count >= 2
        }, "both deliveries did not die within 30 s: \(records.map { ($0.destination, $0.outcome) })")
        let down = records.filter { $0.destination == "down" }
        #expect(down.map(\.outcome) == [.retry, .dead])
        #expect(down.allSatisfy { $0.status == 0 && $0.error.contains("connect") })
        let slow = records.filter { $0.destination == "slow" }
        #expect(slow.map(\.outcome) == [.retry, .dead])
        #expect(slow.allSatisfy { $0.error.contains("timeout") })
        await relay.stop()
        await downstream.stop()
    }

    @Test func aSlowDestinationDoesNotDelayAFastOne() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: forwardingRoutes(
            ["slow": "{ \"url\": \"http://127.0.0.1:\(port)/slow/60000\", \"max_in_flight\": 1, \"timeout_ms\": 120000 }", "fast": "{ \"url\": \"http://127.0.0.1:\(port)/fast\" }"],
            routes: #"[{"name": "all", "to": ["slow", "fast"]}]"#
        ))
        for i in 0..<5 { #expect(try await relay.post("shop", body: Array("{\"id\":\"s\(i)\"}".utf8)).status == 200) }
        // The slow destination holds its first request for a minute; all five reach the fast
        // one meanwhile (were they queued behind the slow one, they would wait that minute).
        #expect(await downstream.wait(timeout: .seconds(30)) { $0.filter { $0.path == "/fast" }.count == 5 })
        #expect(downstream.requests(at: "/slow/60000").count == 1, "the slow one is held to max_in_flight 1")
        #expect(await relay.server.scheduler.status(of: "slow")?.inFlight == 1, "its first request is still unanswered")
        // Stopping the downstream first ends the held request, so the relay stops at once.
        await downstream.stop()
        await relay.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func aDeadDestinationHoldsOnlyItsWindowInMemoryAndCatchesUpWhenBack() async throws {
        let port = unusedLoopbackPort()
        let relay = try await LiveRelay(
            routes: forwardingRoutes(
                ["down": "{ \"url\": \"http://127.0.0.1:\(port)/down\", \"retry\": { \"max_attempts\": 1000, \"initial_backoff_ms\": 20, \"max_backoff_ms\": 50 } }"],
                routes: #"[{"name": "all", "to": ["down"]}]"#
            ),
            scheduler: DeliveryScheduler.Configuration(windowPerDestination: 8)
        )
        var ids: Set<String> = []
        for i in 0..<60 {
            let response = try await relay.post("shop", body: Array("{\"id\":\"w\(i)\"}".utf8))
            ids.formUnion(try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        // All 60 are journaled (each was answered 200); wait until the window's deliveries are
        // being retried, then only the window may be in memory.
        try #require(await eventually(timeout: .seconds(30)) { try relay.storedDeliveries().contains { $0.outcome == .retry } },
                     "the window's deliveries are not being retried")
        let status = try #require(await relay.server.scheduler.status(of: "down"))
        #expect(status.pending <= 8, "only the window is in memory: \(status.pending)")
        #expect(status.overflowing)

        // The destination comes back: everything, in memory or not, is delivered.
        let downstream = TestDownstream()
        _ = try await downstream.start(port: port)
        let delivered = await downstream.wait(timeout: .seconds(30)) { Set($0.compactMap { $0.header("webhook-id") }).isSuperset(of: ids) }
        #expect(delivered)
        let after = await relay.server.scheduler.status(of: "down")
        #expect(after?.overflowing == false)
        await relay.stop()
        await downstream.stop()
    }

    /// A dead destination that refuses connections at once is probed once per cool-down (1 s
    /// here), not in a tight loop over its many due deliveries; when it returns, the first
    /// successful probe closes the breaker and everything flows. The relay runs on a clock the
    /// test moves: every wait is read off what the scheduler sleeps until, none is real time.
    @Test(.timeLimit(.minutes(1)))
    func anOpenBreakerProbesOncePerCooldownNotInATightLoop() async throws {
        let port = unusedLoopbackPort()
        let clock = ManualClock(start: SystemClock().now())
        let start = clock.start.milliseconds
        let relay = try await LiveRelay(
            routes: forwardingRoutes(
                ["down": "{ \"url\": \"http://127.0.0.1:\(port)/down\", \"max_in_flight\": 4, \"retry\": { \"max_attempts\": 1000, \"initial_backoff_ms\": 10, \"max_backoff_ms\": 20 } }"],
                routes: #"[{"name": "all", "to": ["down"]}]"#
            ),
            clock: clock.wall, timer: clock
        )
        var ids: Set<String> = []
        for i in 0..<40 {
            let response = try await relay.post("shop", body: Array("{\"id\":\"b\(i)\"}".utf8))
            ids.formUnion(try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        /// Attempts made so far (counted before the lane shows them finished).
        func attempts() async throws -> Int {
            try await relay.metrics().split(separator: "\n")
                .filter { $0.hasPrefix("relay_deliveries_total{") && $0.contains("destination=\"down\"") }
                .reduce(0) { $0 + (Int(Double($1.split(separator: " ").last ?? "") ?? 0)) }
        }
        /// Moves the clock through the scheduler's wake-ups until it sleeps until `millis` after
        /// the start, idle, with the breaker open (false if it sleeps past it).
        func idle(until millis: Int64) async throws -> Bool {
            let target = Timestamp(milliseconds: start + millis)
            for _ in 0..<100 {
                var next: Timestamp?
                let settled = await eventually(timeout: .seconds(30)) {
                    guard let lane = await relay.server.scheduler.status(of: "down"), lane.breakerOpen, lane.inFlight == 0 else { return false }
                    next = clock.deadlines.first
                    return next != nil
                }
                guard settled, let next, next <= target else { return false }
                if next == target { return true }
                clock.advance(to: next)
            }
            return false
        }
        // The burst that opens the breaker (the threshold, plus what was in flight); then no
        // attempt until the probe 1 s later, though every retry (10–20 ms backoff) is due long before.
        #expect(try await idle(until: 1_000))
        let burst = try await attempts()
        #expect(burst >= 5 && burst <= 8, "attempts that opened the breaker: \(burst)")
        // One probe; it fails, and the next waits another second (the cool-down doubles only up
        // to the destination's max_backoff_ms, here 20 ms, and is never under 1 s).
        clock.advance(to: Timestamp(milliseconds: start + 1_000))
        #expect(try await idle(until: 2_000))
        let afterProbe = try await attempts()
        #expect(afterProbe == burst + 1, "one probe: \(burst) then \(afterProbe)")

        let downstream = TestDownstream()
        _ = try await downstream.start(port: port)
        clock.advance(to: Timestamp(milliseconds: start + 2_000))
        let delivered = await downstream.wait(timeout: .seconds(15)) { Set($0.compactMap { $0.header("webhook-id") }).isSuperset(of: ids) }
        #expect(delivered)
        #expect(await relay.server.scheduler.status(of: "down")?.breakerOpen == false)
        await relay.stop()
        await downstream.stop()
    }
}
