import Foundation
import RelayCore
import RelayTesting
import Testing

/// `rate_per_s` through the whole relay: live deliveries and a replay to the same destination
/// share one token bucket, so the destination never sees more than its rate plus one burst in
/// any second, however large the backlog.
@Suite struct RateLimitTests {
    @Test(.timeLimit(.minutes(2)))
    func liveDeliveriesAndAReplayTogetherStayWithinTheRate() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let burst = 8, rate = 100
        let relay = try await LiveRelay(routes: forwardingRoutes(
            ["limited": "{ \"url\": \"http://127.0.0.1:\(port)/limited\", \"max_in_flight\": \(burst), \"rate_per_s\": \(rate) }"],
            routes: #"[{"name": "all", "to": ["limited"]}]"#
        ))
        // 500 events, and at once a replay of them: 1,000 attempts through one bucket.
        for i in 0..<500 {
            let response = try await relay.post("shop", body: Array("{\"id\":\"rl\(i)\",\"type\":\"order.paid\"}".utf8))
            try #require(response.status == 200)
        }
        let replay = try await relay.admin("/admin/replay", method: "POST", body: Array(#"{"filter":{"source":"shop"},"destinations":["limited"],"concurrency":32}"#.utf8))
        #expect(replay.status == 202)
        let all = await downstream.wait(timeout: .seconds(60)) { $0.count >= 1_000 }
        #expect(all, "\(downstream.requests.count) of 1,000 attempts arrived")
        let times = downstream.requests.map(\.time).sorted()
        try #require(times.count >= 1_000)
        // Starts are spaced by the bucket: 1,000 attempts at 100/s, the first 8 at once, take at
        // least (1,000 - 8) / 100 s (minus the time they spend on the way, a few ms).
        let span = times[999] - times[0]
        #expect(span >= .milliseconds(9_800), "1,000 attempts arrived within \(span)")
        // No second at the sink holds more than the rate plus one burst, give or take the
        // attempts whose way from the relay to the sink took longer than their neighbours': the
        // bucket spaces starts, and the sink sees arrivals. Arrivals within one second started
        // within one second plus that spread, so allow 50 ms of it (5 more at 100/s; a clean
        // clone's CI run under load once saw 109 against 108).
        let jitter = rate / 20
        var busiest = 0
        var start = 0
        for end in times.indices {
            while times[end] - times[start] >= .seconds(1) { start += 1 }
            busiest = max(busiest, end - start + 1)
        }
        #expect(busiest <= rate + burst + jitter, "\(busiest) requests within one second")
        let status = try await relay.admin("/admin/destinations")
        let limited = status.json?["destinations"]?.arrayValue?.first { $0["name"]?.stringValue == "limited" }
        #expect(limited?["rate_per_s"]?.doubleValue == Double(rate) && (limited?["rate_limited"]?.doubleValue ?? 0) > 0, "\(String(describing: limited))")
        await relay.stop()
        await downstream.stop()
    }
}
