import Foundation
import RelayCore
import RelayJournal
import RelayForwarder
import RelayServer
import RelayTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A clock the test moves by hand: the scheduler's breaker cool-downs and retry due times are
/// read from it, so a cool-down can be checked to the millisecond without waiting for it.
private final class HandClock: RelayClock {
    private let time: Mutex<Timestamp>
    init(_ start: Timestamp) { time = Mutex(start) }
    func now() -> Timestamp { time.withLock { $0 } }
    func set(_ value: Timestamp) { time.withLock { $0 = value } }
}

/// Everything journaled in a data directory (read offline, after the relay exited).
private struct OfflineJournal {
    var events: [Event] = []
    var deliveries: [DeliveryRecord] = []

    init(data: String) throws {
        let reader = JournalReader(directory: data + "/journal")
        while let record = try reader.next() {
            switch record.type {
            case .event: events.append(try Event(decoding: record.payload))
            case .deliveryAttempt: deliveries.append(try DeliveryRecord(decoding: record.payload))
            default: break
            }
        }
    }
}

/// The first JSON log line (`--log-format json`) whose message is `message`.
private func logLine(_ log: String, _ message: String) -> JSONValue? {
    for line in log.split(separator: "\n") where line.contains(message) {
        if let json = try? JSONParser.parse(Array(line.utf8)), json["message"]?.stringValue == message { return json }
    }
    return nil
}

/// The relay ids an ingest answer lists.
private func ids(_ response: TestHTTPClient.Response) -> [String] {
    ((try? JSONParser.parse(response.body))?["ids"]?.arrayValue ?? []).compactMap(\.stringValue)
}

/// README "Commands" (serve: SIGTERM) and "Forwarding" (Shutdown, Start-up checkpoint), against
/// the real binary.
@Suite struct ShutdownPromisesTests {
    static func start(_ dir: TemporaryDirectory, run: Int) async throws -> (RelayProcess, ingest: Int, admin: Int) {
        let process = try RelayProcess(
            arguments: ["serve", "--config", dir.path + "/routes.json", "--data", dir.path + "/data",
                        "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json"],
            logPath: dir.path + "/relay-\(run).log"
        )
        let ingest = try await process.waitForPort(message: "ingest listening")
        let admin = try await process.waitForPort(message: "admin listening")
        return (process, ingest, admin)
    }

    /// Whether a new connection to `port` is refused (the listener is closed).
    static func refusesConnections(_ port: Int) -> Bool {
        guard let fd = try? TestHTTPClient.connect(port: port, timeout: 1) else { return true }
        close(fd)
        return false
    }

    /// "SIGTERM: stop accepting, finish in-flight requests": a request whose body is still
    /// arriving when SIGTERM comes is read to its end, stored and answered 200, while new
    /// connections are already refused; then the relay exits 0.
    @Test(.timeLimit(.minutes(1)))
    func sigtermFinishesAnIngestRequestWhoseBodyIsStillArriving() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("routes.json", #"{ "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } } }"#)
        let (relay, ingest, _) = try await Self.start(dir, run: 0)
        defer { relay.signal(SIGKILL) }

        let body = Array(#"{"id":"in-flight-1","pad":"\#(String(repeating: "x", count: 2000))"}"#.utf8)
        let half = body.count / 2
        let fd = try TestHTTPClient.connect(port: ingest, timeout: 20)
        defer { close(fd) }
        func send(_ bytes: [UInt8]) -> Bool {
            var sent = 0
            while sent < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return false }
                sent += n
            }
            return true
        }
        let head = "POST /webhooks/shop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        #expect(send(Array(head.utf8) + body[0..<half]))
        // A request on a later connection answered: the listener has accepted ours (in order)
        // and read what we sent of it.
        #expect(try await TestHTTPClient.send(port: ingest, path: "/healthz").status == 200)

        relay.signal(SIGTERM)
        // Shutdown has begun: the listener no longer accepts.
        var refused = Self.refusesConnections(ingest)
        for _ in 0..<1500 where !refused {
            try await Task.sleep(for: .milliseconds(20))
            refused = Self.refusesConnections(ingest)
        }
        try #require(refused, "the ingest listener still accepts 30 s after SIGTERM")
        #expect(relay.process.isRunning, "the relay waits for the request in flight")

        // The rest of the body, after SIGTERM: the request is finished, not cut.
        #expect(send(Array(body[half...])))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 4096, 0) }
            if n <= 0 { break }
            received.append(contentsOf: chunk[0..<n])
            // One answer is enough: the connection may stay open (keep-alive) until the relay closes it.
            if let text = String(bytes: received, encoding: .utf8), text.contains("\r\n\r\n"), text.hasSuffix("}") { break }
        }
        let text = String(decoding: received, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200"), "answer to the request cut by SIGTERM: \(text)")
        let answer = try #require(text.range(of: "\r\n\r\n").map { try JSONParser.parse(Array(text[$0.upperBound...].utf8)) })
        #expect(answer["accepted"]?.doubleValue == 1)
        let id = try #require(answer["ids"]?.arrayValue?.first?.stringValue)

        #expect(await relay.waitForExit() == 0)
        #expect(relay.log.contains("relay stopped"))
        let stored = try OfflineJournal(data: dir.path + "/data").events
        #expect(stored.map(\.id) == [id], "the event answered 200 during shutdown is in the journal")
        #expect(stored.first?.body == body)
    }

    /// "SIGTERM: … finish deliveries (up to 10 s)" and "a checkpoint … is written … at
    /// shutdown": a delivery in flight to a destination answering after 2 s completes, its
    /// outcome is journaled before exit (0), `checkpoint.bin` is saved, and the next start
    /// begins from it and knows the delivery is done.
    @Test(.timeLimit(.minutes(1)))
    func sigtermWaitsForADeliveryInFlightJournalsItAndSavesACheckpoint() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let downstream = TestDownstream()
        let port = try await downstream.start()
        try dir.write("routes.json", forwardingRoutes(
            ["slow": "{ \"url\": \"http://127.0.0.1:\(port)/slow/2000\", \"timeout_ms\": 30000 }"],
            routes: #"[{"name": "all", "to": ["slow"]}]"#
        ))
        let (relay, ingest, _) = try await Self.start(dir, run: 0)
        defer { relay.signal(SIGKILL) }
        let response = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", body: Array(#"{"id":"slow-1"}"#.utf8))
        #expect(response.status == 200)
        let id = try #require(ids(response).first)
        try #require(await downstream.wait { $0.contains { $0.header("webhook-id") == id } }, "the delivery was sent")

        relay.signal(SIGTERM)  // while the downstream holds the request for 2 s
        #expect(await relay.waitForExit(timeout: 30) == 0)

        let journal = try OfflineJournal(data: dir.path + "/data")
        let outcomes = journal.deliveries.filter { $0.eventID == id }
        #expect(outcomes.map(\.outcome) == [.succeeded], "the delivery in flight finished and was journaled before exit")
        #expect(outcomes.first?.status == 204)
        let checkpoint = dir.path + "/data/journal/checkpoint.bin"
        #expect(FileManager.default.fileExists(atPath: checkpoint), "a checkpoint is saved at shutdown")

        // The next start reads the checkpoint and only the records after it.
        let (second, ingest2, admin2) = try await Self.start(dir, run: 1)
        defer { second.signal(SIGKILL) }
        let recovered = try #require(logLine(second.log, "deliveries recovered from the journal"), "start-up line:\n\(second.log)")
        let from = try #require(recovered["checkpoint"]?.stringValue.flatMap { UInt64($0) }, "start-up used a checkpoint: \(recovered)")
        #expect(from >= UInt64(journal.events.count + 1), "the checkpoint covers the event and its routing decision")
        let records = try #require(recovered["records"]?.stringValue.flatMap { Int($0) })
        #expect(records <= 3, "only the records after the shutdown checkpoint are read (\(records))")
        #expect(recovered["pending"]?.stringValue == "0", "the finished delivery is not pending after the restart")
        // Its de-duplication keys came back with it.
        let again = try await TestHTTPClient.send(port: ingest2, method: "POST", path: "/webhooks/shop", body: Array(#"{"id":"slow-1"}"#.utf8))
        #expect(try JSONParser.parse(again.body)["duplicates"]?.doubleValue == 1)
        let metrics = try await TestHTTPClient.send(port: admin2, path: "/metrics").text
        #expect(metrics.contains("relay_deliveries_pending{destination=\"slow\"} 0"), "metrics: \(metrics.split(separator: "\n").filter { $0.contains("pending") })")
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0)
        #expect(downstream.requests.filter { $0.header("webhook-id") == id }.count == 1, "sent once: nothing re-sent after the restart")
        await downstream.stop()
    }

    /// "deliveries (up to 10 s) … cut ones are retried after restart": a destination holding
    /// the request for longer than the limit is cut at about 10 s, the relay still exits 0,
    /// nothing is journaled as its outcome, and the next start sends it again.
    @Test(.timeLimit(.minutes(1)))
    func aDeliveryCutByTheTenSecondLimitIsSentAgainAfterRestart() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let downstream = TestDownstream()
        let port = try await downstream.start()
        func routes(_ path: String) -> String {
            forwardingRoutes(["hook": "{ \"url\": \"http://127.0.0.1:\(port)\(path)\", \"timeout_ms\": 60000 }"], routes: #"[{"name": "all", "to": ["hook"]}]"#)
        }
        try dir.write("routes.json", routes("/slow/30000"))
        let (relay, ingest, _) = try await Self.start(dir, run: 0)
        defer { relay.signal(SIGKILL) }
        let response = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", body: Array(#"{"id":"hang-1"}"#.utf8))
        let id = try #require(ids(response).first)
        try #require(await downstream.wait { $0.contains { $0.header("webhook-id") == id } }, "the delivery was sent")

        let signalled = ContinuousClock.now
        relay.signal(SIGTERM)
        #expect(await relay.waitForExit(timeout: 40) == 0)
        let waited = ContinuousClock.now - signalled
        #expect(waited >= .milliseconds(9_500), "shutdown waited for the delivery in flight up to the limit (\(waited))")
        #expect(waited < .seconds(25), "and not for the destination's 30 s (\(waited))")
        let journal = try OfflineJournal(data: dir.path + "/data")
        #expect(!journal.deliveries.contains { $0.eventID == id && $0.outcome != .retry }, "the cut attempt neither succeeded nor died: \(journal.deliveries.map(\.outcome))")

        // The destination answers at once now; the restart sends the cut delivery again.
        try dir.write("routes.json", routes("/fast"))
        let (second, _, _) = try await Self.start(dir, run: 1)
        defer { second.signal(SIGKILL) }
        #expect(await downstream.wait { $0.contains { $0.path == "/fast" && $0.header("webhook-id") == id } }, "the cut delivery is sent after the restart")
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0)
        let after = try OfflineJournal(data: dir.path + "/data").deliveries.filter { $0.eventID == id }
        #expect(after.map(\.outcome) == [.succeeded])
        print("cut delivery: shutdown took \(waited); resent with x-relay-attempt \(downstream.requests(at: "/fast").first?.header("x-relay-attempt") ?? "-")")
        await downstream.stop()
    }
}

extension ShutdownPromisesTests {
    /// "SIGHUP: reload routes.json" resumes a destination paused by a 410, on the real binary:
    /// the delivery that waited while it was paused is sent after the signal.
    @Test(.timeLimit(.minutes(1)))
    func sighupResumesADestinationPausedByA410() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let downstream = TestDownstream()
        let port = try await downstream.start()
        func routes(_ path: String) -> String {
            forwardingRoutes(
                ["gone": fastRetry("http://127.0.0.1:\(port)\(path)"), "witness": fastRetry("http://127.0.0.1:\(port)/witness")],
                routes: #"[{"name": "all", "to": ["gone", "witness"]}]"#
            )
        }
        try dir.write("routes.json", routes("/status/410"))
        let (relay, ingest, _) = try await Self.start(dir, run: 0)
        defer { relay.signal(SIGKILL) }
        func post(_ id: String) async throws -> String {
            let response = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", body: Array("{\"id\":\"\(id)\"}".utf8))
            return try #require(ids(response).first)
        }
        _ = try await post("h1")
        #expect(await downstream.wait { $0.contains { $0.path == "/status/410" } })
        for _ in 0..<1500 where !relay.log.contains("delivery dead") { try await Task.sleep(for: .milliseconds(20)) }
        let dead = try #require(logLine(relay.log, "delivery dead"), "the 410 is logged")
        #expect(dead["paused_destination"]?.stringValue == "true")
        let h2 = try await post("h2")
        #expect(await downstream.wait { $0.contains { $0.path == "/witness" && $0.header("webhook-id") == h2 } })
        #expect(downstream.requests(at: "/status/410").count == 1, "h2 waits while the destination is paused")

        try dir.write("routes.json", routes("/back"))
        relay.signal(SIGHUP)
        #expect(await downstream.wait { $0.contains { $0.path == "/back" && $0.header("webhook-id") == h2 } }, "resumed by SIGHUP:\n\(relay.log.suffix(2000))")
        relay.signal(SIGTERM)
        #expect(await relay.waitForExit() == 0)
        await downstream.stop()
    }
}

/// README "Forwarding" (Outcomes: a 410 pauses the destination until the next config reload;
/// Request: the destination's `headers` cannot override relay-set ones; Isolation: the breaker).
@Suite struct ForwardingPromisesTests {
    /// "a `410` also pauses the destination until the next config reload": deliveries to it
    /// after the 410 wait (the lane of a witness destination shows the scheduler ran meanwhile),
    /// a reload resumes it — even an unchanged file — and once it answers 2xx they flow again.
    @Test(.timeLimit(.minutes(1)))
    func a410PausedDestinationWaitsAndResumesAtTheNextReload() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        func routes(_ path: String) -> String {
            forwardingRoutes(
                ["gone": fastRetry("http://127.0.0.1:\(port)\(path)"), "witness": fastRetry("http://127.0.0.1:\(port)/witness")],
                routes: #"[{"name": "all", "to": ["gone", "witness"]}]"#
            )
        }
        let relay = try await LiveRelay(routes: routes("/status/410"))
        func post(_ id: String) async throws -> String {
            let response = try await relay.post("shop", body: Array("{\"id\":\"\(id)\"}".utf8))
            #expect(response.status == 200)
            return try #require(ids(response).first)
        }
        func witnessed(_ id: String) async -> Bool { await downstream.wait { $0.contains { $0.path == "/witness" && $0.header("webhook-id") == id } } }
        func gone() -> [String] { downstream.requests(at: "/status/410").compactMap { $0.header("webhook-id") } }

        let g1 = try await post("g1")
        #expect(await downstream.wait { $0.contains { $0.path == "/status/410" } })
        #expect(try await relay.storedDeliveries(atLeast: 2).contains { $0.destination == "gone" && $0.pausedDestination && $0.outcome == .dead })
        // Sent while paused: they wait (the witness got them, so the scheduler has run since).
        let g2 = try await post("g2"), g3 = try await post("g3")
        #expect(await witnessed(g2))
        #expect(await witnessed(g3))
        var status = try #require(await relay.server.scheduler.status(of: "gone"))
        #expect(status.paused && status.pending == 2 && status.inFlight == 0, "\(status)")
        #expect(gone() == [g1])

        // A reload of the same file resumes the lane: the waiting deliveries are sent (and,
        // refused with 410 again, pause it again).
        #expect(try await relay.admin("/admin/routes/reload", method: "POST").status == 200)
        #expect(await downstream.wait { _ in Set(gone()) == [g1, g2, g3] }, "resumed after the reload: \(gone())")
        for _ in 0..<1500 {
            if let lane = await relay.server.scheduler.status(of: "gone"), lane.dead == 3, lane.inFlight == 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        status = try #require(await relay.server.scheduler.status(of: "gone"))
        #expect(status.paused && status.pending == 0 && status.dead == 3, "\(status)")

        // Paused again: g4 waits, then the destination is fixed and reloaded: g4 is delivered,
        // and so is what comes after, without another reload.
        let g4 = try await post("g4")
        #expect(await witnessed(g4))
        #expect(await relay.server.scheduler.status(of: "gone")?.pending == 1)
        try routes("/back").write(toFile: relay.configPath, atomically: true, encoding: .utf8)
        #expect(try await relay.admin("/admin/routes/reload", method: "POST").status == 200)
        #expect(await downstream.wait { $0.contains { $0.path == "/back" && $0.header("webhook-id") == g4 } })
        let g5 = try await post("g5")
        #expect(await downstream.wait { $0.contains { $0.path == "/back" && $0.header("webhook-id") == g5 } })
        #expect(downstream.requests(at: "/back").compactMap { $0.header("webhook-id") } == [g4, g5], "dead deliveries are not resent")
        #expect(gone().count == 3)
        for _ in 0..<1500 {
            if await relay.server.scheduler.status(of: "gone")?.succeeded == 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        status = try #require(await relay.server.scheduler.status(of: "gone"))
        #expect(!status.paused && status.pending == 0 && status.succeeded == 2, "\(status)")
        await relay.stop()
        await downstream.stop()
    }

    /// "Relay-set headers (`webhook-*`, `content-length`, `host`…) cannot be overridden": a
    /// destination configuring one is a load error naming it (any case).
    @Test(arguments: ["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "Host", "content-length", "Transfer-Encoding", "Connection",
                      "X-Relay-Attempt", "x-relay-source", "X-RELAY-REPLAY", "Content-Type"])
    func aDestinationCannotConfigureARelaySetHeader(_ name: String) throws {
        let file = forwardingRoutes(
            ["d": "{ \"url\": \"http://127.0.0.1:9/x\", \"headers\": { \"\(name)\": \"forged\", \"Authorization\": \"Bearer t\" } }"],
            routes: #"[{"name": "all", "to": ["d"]}]"#
        )
        let error = try #require(throws: ConfigError.self) { try RelayConfig.parse(Array(file.utf8), file: "routes.json", environment: [:]) }
        #expect(error.issues.map(\.description) == ["routes.json: destinations.d.headers.\(name): is set by the relay and cannot be configured"])
    }

    /// A destination's own headers are sent beside the relay's, each once: the relay's values
    /// are never duplicated or replaced (the names that could are refused at load, above).
    @Test(.timeLimit(.minutes(1)))
    func aDestinationsHeadersAreSentBesideTheRelaysOwn() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let file = forwardingRoutes(
            ["d": "{ \"url\": \"http://127.0.0.1:\(port)/h\", \"headers\": { \"Authorization\": \"Bearer t\", \"X-Team\": \"orders\" } }"],
            routes: #"[{"name": "all", "to": ["d"]}]"#
        )
        let relay = try await LiveRelay(routes: file)
        #expect(try await relay.post("shop", body: Array(#"{"id":"h1"}"#.utf8)).status == 200)
        #expect(await downstream.wait { $0.count == 1 })
        let request = try #require(downstream.requests.first)
        func values(_ name: String) -> [String] { request.headers.filter { $0.name.lowercased() == name }.map(\.value) }
        #expect(values("authorization") == ["Bearer t"] && values("x-team") == ["orders"], "\(request.headers)")
        #expect(values("x-relay-attempt") == ["1"] && values("x-relay-source") == ["shop"] && values("content-type").count == 1, "\(request.headers)")
        #expect(values("webhook-id").count == 1)
        await relay.stop()
        await downstream.stop()
    }
}

/// README "Forwarding", Isolation: "After 5 consecutive failures the breaker opens: the lane sends
/// one request at a time (a probe), at most one per cool-down — 1 s after the failure that opened
/// it, doubling per failed probe up to a minute (or the destination's `max_backoff_ms`, if
/// shorter)". A live relay on a clock the test moves: the cool-downs are checked to the
/// millisecond (no probe 1 ms before one ends, a probe when it does) without waiting for them.
@Suite struct BreakerPromisesTests {
    /// A relay whose `down` destination (at `path` of the downstream) fails, and a `witness`
    /// destination: an event sent to the witness and received by it proves the scheduler has
    /// looked at every lane since (one pass starts the due deliveries of all lanes).
    fileprivate struct Rig {
        let relay: LiveRelay
        let downstream: TestDownstream
        let clock: HandClock
        let downPath: String
        var wakes = 0

        init(down: String, downPath: String) async throws {
            let downstream = TestDownstream()
            let port = try await downstream.start()
            let clock = HandClock(SystemClock().now())
            relay = try await LiveRelay(
                routes: forwardingRoutes(
                    ["down": down.replacingOccurrences(of: "URL", with: "http://127.0.0.1:\(port)\(downPath)"),
                     "witness": "{ \"url\": \"http://127.0.0.1:\(port)/witness\" }"],
                    routes: #"[{"name": "down", "match": {"type": "down"}, "to": ["down"]}, {"name": "wake", "match": {"type": "wake"}, "to": ["witness"]}]"#
                ),
                clock: clock
            )
            self.downstream = downstream
            self.clock = clock
            self.downPath = downPath
        }

        /// Requests the failing destination has received.
        var sent: Int { downstream.requests(at: downPath).count }
        /// Outcomes journaled for it.
        func outcomes() throws -> [DeliveryRecord] { try relay.storedDeliveries().filter { $0.destination == "down" } }
        func lane() async throws -> DeliveryScheduler.LaneStatus { try #require(await relay.server.scheduler.status(of: "down")) }

        func post(type: String, id: String) async throws {
            let response = try await relay.post("shop", body: Array("{\"id\":\"\(id)\",\"type\":\"\(type)\"}".utf8))
            try #require(response.status == 200)
        }

        /// Makes the scheduler run a pass at the clock's current time and waits until it has.
        mutating func pass() async throws {
            wakes += 1
            let id = "wake-\(wakes)"
            try await post(type: "wake", id: id)
            let seen = await downstream.wait { $0.contains { $0.path == "/witness" && String(decoding: $0.body, as: UTF8.self).contains("\"\(id)\"") } }
            try #require(seen, "the scheduler ran a pass")
        }

        /// Waits (bounded) until the failing destination is idle with its breaker open and every
        /// request it got has a journaled outcome.
        func settledOpen() async throws {
            for _ in 0..<1500 {
                let lane = try await lane()
                if lane.breakerOpen && lane.inFlight == 0, try outcomes().count == sent { return }
                try await Task.sleep(for: .milliseconds(20))
            }
            Issue.record("the breaker did not open and settle: \(try await lane()), \(sent) sent, \(try outcomes().count) journaled")
            throw CancellationError()
        }

        func stop() async {
            await relay.stop()
            await downstream.stop()
        }
    }

    /// The cool-downs in order, per README: 1 s after the failure that opened it, then doubling
    /// per failed probe, capped at min(60 s, max_backoff_ms).
    static func expectedCooldowns(maxBackoff: Int64, count: Int) -> [Int64] {
        (0..<count).map { min(1_000 << Int64(min($0, 20)), min(60_000, maxBackoff)) }
    }

    /// A destination answering 503 at once: each cool-down is measured to the millisecond (no
    /// probe 1 ms before a candidate length, a probe at it; candidates are 1 s × 2^k and the
    /// cap), then compared with the README's sequence.
    @Test(.timeLimit(.minutes(1)), arguments: [Int64(4_000), Int64(3_600_000)])
    func theCooldownDoublesPerFailedProbeUpToTheCap(maxBackoff: Int64) async throws {
        var rig = try await Rig(
            down: "{ \"url\": \"URL\", \"max_in_flight\": 4, \"retry\": { \"max_attempts\": 10000, \"initial_backoff_ms\": 1, \"max_backoff_ms\": \(maxBackoff) } }",
            downPath: "/status/503"
        )
        for i in 0..<8 { try await rig.post(type: "down", id: "d\(i)") }
        try await rig.settledOpen()
        let cap = min(60_000, maxBackoff)
        let candidates = Array(Set((0..<7).map { min(Int64(1_000) << Int64($0), cap) })).sorted()
        let expected = Self.expectedCooldowns(maxBackoff: maxBackoff, count: maxBackoff == 4_000 ? 5 : 9)
        // Every failure so far happened at this (frozen) instant, the one that opened the breaker too.
        var last = rig.clock.now()
        var observed: [Int64] = []
        probes: for _ in expected {
            let before = rig.sent
            var gap: Int64?
            for candidate in candidates {
                // 1 ms before: due deliveries, but no probe yet…
                rig.clock.set(Timestamp(milliseconds: last.milliseconds + candidate - 1))
                try await rig.pass()
                let early = try await rig.lane()
                guard rig.sent == before && early.inFlight == 0 else {
                    Issue.record("a probe came before \(candidate) ms, after none at the shorter candidates (probe \(observed.count + 1))")
                    break probes
                }
                // …and at the candidate, one probe: the cool-down is this long.
                rig.clock.set(Timestamp(milliseconds: last.milliseconds + candidate))
                try await rig.pass()
                if try await rig.lane().inFlight > 0 || rig.sent > before {
                    gap = candidate
                    break
                }
            }
            guard let gap else {
                Issue.record("no probe within the cap of \(cap) ms (probe \(observed.count + 1))")
                break
            }
            try #require(await rig.downstream.wait { $0.filter { $0.path == rig.downPath }.count > before })
            for _ in 0..<1500 where try rig.outcomes().count <= before { try await Task.sleep(for: .milliseconds(20)) }
            let outcome = try #require(try rig.outcomes().last)
            #expect(outcome.outcome == .retry && outcome.status == 503)
            #expect(outcome.time.milliseconds - last.milliseconds == gap, "the probe failed at the instant it was sent (clock frozen)")
            observed.append(gap)
            last = outcome.time
            try await rig.pass()
            #expect(rig.sent == before + 1, "one probe per cool-down")
            #expect(try await rig.lane().breakerOpen)
        }
        // What holds: 1 s after the failure that opened it, growing by doubling, never past the
        // cap (min(60 s, max_backoff_ms)), and staying there.
        #expect(observed.count == expected.count, "\(observed)")
        #expect(observed.first == 1_000, "\(observed)")
        #expect(zip(observed, observed.dropFirst()).allSatisfy { $1 == $0 || $1 == min(2 * $0, cap) }, "\(observed)")
        #expect(observed.suffix(2) == [cap, cap], "\(observed)")
        // The README's sequence: doubling from the first failed probe on.
        #expect(observed == expected, "cool-downs between probes (ms), max_backoff_ms \(maxBackoff)")
        await rig.stop()
    }

    /// With `max_in_flight` 5 and many deliveries due, an open breaker has one request in flight
    /// at a time: while a probe hangs, further passes start nothing else.
    @Test(.timeLimit(.minutes(1)))
    func anOpenBreakerHasOneProbeInFlightAtATime() async throws {
        var rig = try await Rig(
            down: "{ \"url\": \"URL\", \"max_in_flight\": 5, \"timeout_ms\": 2000, \"retry\": { \"max_attempts\": 10000, \"initial_backoff_ms\": 1, \"max_backoff_ms\": 60000 } }",
            downPath: "/slow/5000"
        )
        for i in 0..<12 { try await rig.post(type: "down", id: "s\(i)") }
        try await rig.settledOpen()
        let before = rig.sent
        #expect(before >= 5, "the burst that opened the breaker used the lane's \(before) slots")
        let opened = rig.clock.now()
        // The delivery store tails the journal: the last posts may reach the lane a moment
        // after they were acknowledged.
        var pendingNow = try await rig.lane().pending
        for _ in 0..<500 where pendingNow < 12 {
            try await Task.sleep(for: .milliseconds(20))
            pendingNow = try await rig.lane().pending
        }
        #expect(pendingNow == 12, "pending: \(pendingNow)")

        // The cool-down is over and all 12 deliveries are due: one probe, and while it hangs
        // (the downstream holds it until the 2 s timeout) more passes start nothing.
        rig.clock.set(Timestamp(milliseconds: opened.milliseconds + 60_000))
        try await rig.pass()
        #expect(await rig.downstream.wait { $0.filter { $0.path == rig.downPath }.count > before })
        var maxInFlight = 0
        for _ in 0..<3 {
            try await rig.pass()
            maxInFlight = max(maxInFlight, try await rig.lane().inFlight)
        }
        #expect(maxInFlight <= 1, "requests in flight to an open-breaker destination: \(maxInFlight)")
        #expect(rig.sent == before + 1, "one probe, not \(rig.sent - before)")
        // It times out, the cool-down starts again: still just the one.
        for _ in 0..<1500 where try rig.outcomes().count <= before { try await Task.sleep(for: .milliseconds(20)) }
        #expect(try rig.outcomes().count == before + 1)
        try await rig.pass()
        #expect(rig.sent == before + 1)
        #expect(try await rig.lane().breakerOpen)
        await rig.stop()
    }
}
