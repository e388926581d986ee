import Foundation
import RelayCore
import RelayServer
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The value of the first sample whose line starts with `name{` (or `name `) and contains every label.
func sample(_ text: String, _ name: String, _ labels: [String] = []) -> Double? {
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { continue }
        guard labels.allSatisfy({ line.contains($0) }) else { continue }
        return line.split(separator: " ").last.flatMap { Double($0) }
    }
    return nil
}

@Suite struct MetricsTests {
    @Test func metricsAppearAndMove() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type" } },
                       "signed": { "provider": "generic", "secret": "s3cret-value", "signature": { "scheme": "hmac-sha256", "header": "X-Sig" } } },
          "destinations": { "up": { "url": "http://127.0.0.1:\(port)/up" },
                            "down": { "url": "http://127.0.0.1:\(unusedLoopbackPort())/down", "retry": { "initial_backoff_ms": 60000, "max_backoff_ms": 60000 } } },
          "routes": [ { "name": "all", "to": ["up", "down"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop(); await downstream.stop() } }
        func scrape() async throws -> String { try await relay.metrics() }
        let empty = try await scrape()
        #expect(sample(empty, "relay_events_ingested_total") == nil)

        for i in 0..<3 { _ = try await relay.post("shop", body: Array("{\"id\":\"m\(i)\",\"type\":\"order.paid\"}".utf8)) }
        _ = try await relay.post("shop", body: Array(#"{"id":"m0","type":"order.paid"}"#.utf8))  // a duplicate
        _ = try await relay.post("no-such-source-xyz", body: Array("{}".utf8))
        _ = try await relay.post("signed", body: Array("{}".utf8), headers: [("X-Sig", "bad")])
        #expect(await downstream.wait { $0.count == 3 })
        var text = ""
        _ = try await eventually(timeout: .seconds(30)) {
            text = try await scrape()
            return sample(text, "relay_deliveries_total", [#"destination="up""#, #"outcome="succeeded""#]) == 3
                && (sample(text, "relay_deliveries_total", [#"destination="down""#, #"outcome="retry""#]) ?? 0) >= 3
        }
        #expect(sample(text, "relay_events_ingested_total", [#"source="shop""#, #"provider="generic""#, #"type="order.paid""#]) == 3)
        #expect(sample(text, "relay_ingest_duplicates_total", [#"source="shop""#]) == 1)
        #expect(sample(text, "relay_ingest_rejections_total", [#"source="(unknown)""#, #"reason="unknown_source""#]) == 1)
        #expect(sample(text, "relay_ingest_rejections_total", [#"source="signed""#, #"reason="unauthorized""#]) == 1)
        #expect(!text.contains("no-such-source-xyz"), "request paths never become label values")
        #expect(!text.contains("s3cret-value"))
        #expect(sample(text, "relay_deliveries_total", [#"destination="up""#, #"outcome="succeeded""#]) == 3)
        // Each of the 3 deliveries to the dead destination failed at least once; with full jitter
        // a second attempt can come early (the backoff is anywhere up to 60 s), and the breaker
        // opens at the 5th consecutive failure.
        let retries = sample(text, "relay_deliveries_total", [#"destination="down""#, #"outcome="retry""#]) ?? 0
        #expect(retries >= 3)
        #expect(sample(text, "relay_deliveries_pending", [#"destination="down""#]) == 3)
        #expect(sample(text, "relay_deliveries_pending", [#"destination="up""#]) == 0)
        #expect(sample(text, "relay_destination_breaker_open", [#"destination="down""#]) == (retries >= 5 ? 1 : 0))
        #expect((sample(text, "relay_journal_commit_records_count") ?? 0) >= 1)
        #expect((sample(text, "relay_journal_commit_seconds_count") ?? 0) >= 1)
        #expect(sample(text, "relay_delivery_attempt_seconds_count", [#"destination="up""#]) == 3)
        #expect(text.contains("# TYPE relay_events_ingested_total counter"))

        let replay = try await relay.admin("/admin/replay", method: "POST", body: Array(#"{"filter":{"source":"shop"},"destinations":["up"]}"#.utf8))
        #expect(replay.status == 202)
        #expect(await downstream.wait { $0.count == 6 })
        _ = try await eventually(timeout: .seconds(30)) {
            text = try await scrape()
            return sample(text, "relay_replay_deliveries_total", [#"destination="up""#, #"outcome="succeeded""#]) == 3
                && sample(text, "relay_replays_running") == 0
        }
        #expect(sample(text, "relay_replay_deliveries_total", [#"destination="up""#, #"outcome="succeeded""#]) == 3)
        #expect(sample(text, "relay_replays_running") == 0)
        await relay.stop()
        await downstream.stop()
    }
}

@Suite struct LogTests {
    /// --log-format json: every line is one JSON object; rejected requests and failing
    /// deliveries get a line with what an operator needs, and no body or secret ever appears.
    @Test(.timeLimit(.minutes(2)))
    func jsonLinesWithTheFieldsAndNoBodiesOrSecrets() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let downstream = TestDownstream()
        let goneURL = "http://127.0.0.1:\(try await downstream.start())/status/410"
        try dir.write("routes.json", """
        { "sources": { "shop": { "provider": "generic", "secret": "env:SHOP_SECRET", "signature": { "scheme": "hmac-sha256", "header": "X-Sig" }, "fields": { "id": "/id" } } },
          "destinations": { "down": { "url": "http://127.0.0.1:\(unusedLoopbackPort())/down", "headers": { "Authorization": "env:DOWN_TOKEN" },
                                      "retry": { "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20 } },
                            "gone": { "url": "\(goneURL)" } },
          "routes": [ { "name": "all", "to": ["down", "gone"] } ] }
        """)
        let secret = "hmac-secret-4242", token = "Bearer down-token-4242"
        let process = try RelayProcess(
            arguments: ["serve", "--config", dir.path + "/routes.json", "--data", dir.path + "/data", "--listen", "127.0.0.1:0",
                        "--admin-listen", "127.0.0.1:0", "--log-format", "json"],
            logPath: dir.path + "/relay.log", environment: ["SHOP_SECRET": secret, "DOWN_TOKEN": token]
        )
        let ingest = try await process.waitForPort(message: "ingest listening")
        let body = Array(#"{"id":"log-1","card":"BODY-MARKER-9999"}"#.utf8)
        let signature = Signatures.hmacSHA256(key: Array(secret.utf8), message: body).map { String(format: "%02x", $0) }.joined()
        let stored = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", headers: [("X-Sig", signature)], body: body)
        #expect(stored.status == 200)
        let rejected = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", headers: [("X-Sig", "00")], body: body)
        #expect(rejected.status == 401)
        try #require(await eventually(timeout: .seconds(30)) { process.log.components(separatedBy: "delivery dead").count == 3 },
                     "both deliveries did not die within 30 s:\n\(process.log)")
        process.signal(SIGTERM)
        #expect(await process.waitForExit() == 0)
        await downstream.stop()

        let lines = process.log.split(separator: "\n")
        #expect(lines.count > 5)
        var objects: [JSONValue] = []
        for line in lines {
            let parsed = try? JSONParser.parse(Array(line.utf8))
            #expect(parsed?["level"]?.stringValue != nil && parsed?["message"]?.stringValue != nil, "not a JSON log line: \(line)")
            if let parsed { objects.append(parsed) }
        }
        let rejection = objects.first { $0["message"]?.stringValue == "ingest rejected" }
        #expect(rejection?["source"]?.stringValue == "shop")
        #expect(rejection?["reason"]?.stringValue == "unauthorized")
        #expect(rejection?["status"]?.stringValue == "401")
        let retry = objects.first { $0["message"]?.stringValue == "delivery failed; will retry" }
        #expect(retry?["destination"]?.stringValue == "down")
        #expect(retry?["event_id"]?.stringValue?.hasPrefix("evt_") == true)
        #expect(retry?["next_attempt"]?.stringValue != nil)
        #expect(retry?["error"]?.stringValue?.isEmpty == false)
        let dead = objects.first { $0["message"]?.stringValue == "delivery dead" && $0["destination"]?.stringValue == "down" }
        #expect(dead?["level"]?.stringValue == "error")
        #expect(dead?["attempt"]?.stringValue == "2")
        #expect(dead?["reason"]?.stringValue?.contains("max_attempts") == true, "\(String(describing: dead))")
        #expect(dead?["paused_destination"]?.stringValue == "false")
        // A 410 kills the delivery at once and pauses its destination; the line says both.
        let gone = objects.first { $0["message"]?.stringValue == "delivery dead" && $0["destination"]?.stringValue == "gone" }
        #expect(gone?["status"]?.stringValue == "410")
        #expect(gone?["attempt"]?.stringValue == "1")
        #expect(gone?["reason"]?.stringValue?.isEmpty == false, "\(String(describing: gone))")
        #expect(gone?["paused_destination"]?.stringValue == "true")
        for forbidden in ["BODY-MARKER-9999", secret, "down-token-4242", signature] {
            #expect(!process.log.contains(forbidden), "the log must not contain \(forbidden)")
        }
    }
}
