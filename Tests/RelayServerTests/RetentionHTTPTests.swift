import Foundation
import Logging
import RelayCore
import RelayForwarder
import RelayJournal
import RelayServer
import RelayTesting
import Synchronization
import Testing

/// Retention inside a running relay: expired segments go while it ingests and delivers, a
/// segment a pending delivery needs is held (and reported) until that delivery finishes.
@Suite struct RetentionHTTPTests {
    static let day: Int64 = 86_400_000

    @Test(.timeLimit(.minutes(2)))
    func expiredSegmentsGoAndOnesWithPendingDeliveriesAreHeldUntilTheyFinish() async throws {
        let sink = TestDownstream()
        let sinkPort = try await sink.start()
        let downPort = unusedLoopbackPort()
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "status": "/status" } } },
          "destinations": { "up": { "url": "http://127.0.0.1:\(sinkPort)/up" },
                            "down": { "url": "http://127.0.0.1:\(downPort)/down", "retry": { "max_attempts": 100000, "initial_backoff_ms": 50, "max_backoff_ms": 200, "max_age": "90d" } } },
          "routes": [ { "name": "ok", "match": { "status": "OK" }, "to": ["up"] }, { "name": "failed", "match": { "status": "FAILED" }, "to": ["down"] } ] }
        """
        // Forty days ago, by the relay's clock.
        let clock = OffsetClock(milliseconds: -40 * Self.day)
        var scheduler = DeliveryScheduler.Configuration()
        scheduler.retentionInterval = .milliseconds(100)
        let (logger, logs) = makeLogger()
        let relay = try await LiveRelay(
            routes: routes, journal: { JournalConfiguration(directory: $0, segmentSize: 4096) }, scheduler: scheduler, clock: clock,
            retentionMillis: 30 * Self.day, logger: logger
        )
        defer { Task { await relay.stop(); await sink.stop() } }
        let journalDirectory = relay.directory.path + "/data/journal"
        func segments() throws -> [UInt64] {
            try FileManager.default.contentsOfDirectory(atPath: journalDirectory).compactMap(JournalFormat.segmentBase(fileName:)).sorted()
        }
        func post(_ id: String, _ status: String) async throws {
            let response = try await relay.post("shop", body: Array("{\"id\":\"\(id)\",\"status\":\"\(status)\",\"pad\":\"\(String(repeating: "x", count: 300))\"}".utf8))
            #expect(response.status == 200)
        }
        for i in 0..<60 { try await post("old-\(i)", "OK") }
        try await post("stuck", "FAILED")  // its delivery to "down" stays pending
        for i in 0..<60 { try await post("mid-\(i)", "OK") }
        #expect(await sink.wait(timeout: .seconds(30)) { $0.count == 120 })
        let before = try segments()
        #expect(before.count > 8)
        #expect(try relay.storedEvents().count == 121)

        // Forty days later: all those events are past the 30-day retention.
        clock.set(milliseconds: 0)
        for i in 0..<30 { try await post("new-\(i)", "OK") }
        #expect(await sink.wait(timeout: .seconds(30)) { $0.count == 150 })
        // The segments before the stuck event's go; the rest of the old ones are held for it.
        let stuckHeld = try await eventually(timeout: .seconds(30)) {
            (try segments().first ?? 0) > before[0] && (relay.server.retention?.heldSegments ?? 0) > 0
        }
        let afterPrune = try segments()
        try #require(stuckHeld, "segments: \(afterPrune), held: \(relay.server.retention?.heldSegments ?? -1)")
        let events = try relay.storedEvents()
        #expect(events.contains { String(decoding: $0.body, as: UTF8.self).contains("\"stuck\"") }, "the event a pending delivery needs is kept")
        #expect(!events.contains { String(decoding: $0.body, as: UTF8.self).contains("\"old-0\"") }, "older events went")
        #expect(events.filter { String(decoding: $0.body, as: UTF8.self).contains("\"new-") }.count == 30)
        let metrics = try await relay.metrics()
        #expect((sample(metrics, "relay_journal_segments_held") ?? 0) > 0, "the held segments are a gauge")

        // The destination comes back: the stuck delivery finishes, and its segments go too.
        let down = TestDownstream()
        _ = try await down.start(port: downPort)
        #expect(await down.wait(timeout: .seconds(30)) { $0.count >= 1 })
        let released = try await eventually(timeout: .seconds(30)) {
            let kept = try relay.storedEvents().contains { String(decoding: $0.body, as: UTF8.self).contains("\"stuck\"") }
            return relay.server.retention?.heldSegments == 0 && !kept
        }
        let finalSegments = try segments()
        let lanes = await relay.server.scheduler.laneStatuses()
        let outcomes = try relay.storedDeliveries().filter { $0.destination == "down" }.map { "\($0.attempt):\($0.outcome):\($0.status)" }
        #expect(released, "segments: \(finalSegments), held: \(relay.server.retention?.heldSegments ?? -1), lanes: \(lanes), down got \(down.requests.count), its outcomes: \(outcomes.suffix(5)), warnings: \(logs.messages.filter { $0.level >= .warning }.suffix(5).map { "\($0.message) \($0.metadata)" })")
        // What remains is one intact journal, and the listing of events ends cleanly.
        #expect(try JournalVerifier.verify(directory: journalDirectory).isIntact)
        var cursor: String?
        var listed = 0
        repeat {
            let page = try await relay.admin("/admin/events?limit=50" + (cursor.map { "&cursor=\($0)" } ?? "")).json
            listed += page?["events"]?.arrayValue?.count ?? 0
            cursor = page?["next_cursor"]?.stringValue
        } while cursor != nil
        let stored = try relay.storedEvents().count
        #expect(listed == stored)
        await down.stop()
        await relay.stop()
        await sink.stop()
    }

    @Test func aMalformedRetentionIsOneLineAndExitTwo() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("routes.json", #"{ "sources": { "shop": { "provider": "generic" } } }"#)
        for bad in ["30", "thirty days", "-1d", "1.5d", ""] {
            // A value that starts with "-" must be attached, or it would read as an option.
            let option = bad.hasPrefix("-") ? ["--retention=\(bad)"] : ["--retention", bad]
            let result = try await runRelay(["serve", "--config", directory.path + "/routes.json", "--data", directory.path + "/data"] + option)
            #expect(result.status == 2, "--retention \(bad): exit \(result.status)")
            let lines = result.err.split(separator: "\n")
            #expect(lines.count == 1 && lines.first?.contains("--retention") == true && lines.first?.contains("invalid duration") == true, "\(result.err)")
        }
    }
}
