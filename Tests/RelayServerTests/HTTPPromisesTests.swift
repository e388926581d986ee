import Foundation
import Logging
import RelayCore
import RelayJournal
import RelayForwarder
import RelayServer
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

// README promises checked over real HTTP: 503s from the journal, the admin token, malformed
// HTTP, delivery paging, de-duplication defaults, checkpoint triggers and hex signatures.

private let plainRoutes = #"{ "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } } }"#

private func body(_ text: String) -> [UInt8] { Array(text.utf8) }

private func bodies(_ events: [Event]) -> [String] { events.map { String(decoding: $0.body, as: UTF8.self) } }

/// A relay server on a data directory the test owns, so it can be stopped and started again on
/// the same journal (LiveRelay removes its directory when stopped).
private final class RestartableRelay: Sendable {
    let server: RelayServer
    private let task: Task<Void, any Error>

    init(directory: TemporaryDirectory, routes: String, journal: JournalConfiguration? = nil, scheduler: DeliveryScheduler.Configuration = .init()) async throws {
        let configPath = try directory.write("routes.json", routes)
        let config = try RelayConfig.parse(Array(routes.utf8), file: "routes.json", environment: [:])
        let server = try RelayServer(
            configuration: RelayServerConfiguration(
                configPath: configPath, dataDirectory: directory.path + "/data",
                listen: .init(host: "127.0.0.1", port: 0), adminListen: .init(host: "127.0.0.1", port: 0),
                journal: journal ?? JournalConfiguration(directory: directory.path + "/data/journal"), scheduler: scheduler
            ),
            config: config, logger: LiveRelay.defaultLogger()
        )
        self.server = server
        task = Task { try await server.run(handleSignals: false) }
        await server.waitUntilListening()
    }

    func post(_ source: String, _ text: String) async throws -> TestHTTPClient.Response {
        try await TestHTTPClient.send(port: server.ingestPort ?? 0, method: "POST", path: "/webhooks/\(source)", headers: [("Content-Type", "application/json")], body: body(text))
    }

    /// Cancels the service group (a graceful shutdown) and waits until the journal is closed.
    func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Every event in a journal directory, read offline.
private func journalEvents(_ directory: String) throws -> [Event] {
    let reader = JournalReader(directory: directory)
    var events: [Event] = []
    while let record = try reader.next() {
        if record.type == .event { events.append(try Event(decoding: record.payload)) }
    }
    return events
}

/// Sends raw bytes to `127.0.0.1:port` and returns everything the peer sent until it closed the
/// connection (or `timeout` passed), and whether it did close.
func rawExchange(port: Int, _ bytes: [UInt8], timeout: Double = 10) async throws -> (answer: String, closed: Bool) {
    let fd = try TestHTTPClient.connect(port: port, timeout: timeout)
    return await withCheckedContinuation { continuation in
        Thread {
            defer { close(fd) }
            var sent = 0
            while sent < bytes.count {
                let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }  // the server may refuse and close before reading it all
                sent += n
            }
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            var closed = false
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }  // timed out, still open
                if n <= 0 { closed = true; break }  // EOF or reset
                received += buffer[0..<n]
            }
            continuation.resume(returning: (String(decoding: received, as: UTF8.self), closed))
        }.start()
    }
}

/// The sequences saved by checkpoint markers in the journal, in order.
private func checkpointMarkers(_ relay: LiveRelay) throws -> [UInt64] {
    try relay.stored(.checkpoint) { payload in
        var reader = ByteReader(payload)
        _ = try reader.read(UInt8.self)
        return try reader.read(UInt64.self)
    }
}


@Suite struct JournalRefusalHTTPTests {
    /// README "Bounded write queue": past the queue limit a request gets 503 + Retry-After: 1 at
    /// once (not after waiting), with a JSON error, and is not stored.
    @Test(.timeLimit(.minutes(1)))
    func aFullWriteQueueIs503WithRetryAfter() async throws {
        let faults = FaultyFileSystem()
        // One byte: any append made while another one waits on its sync is over the limit.
        let relay = try await LiveRelay(routes: plainRoutes, journal: { JournalConfiguration(directory: $0, maxQueuedBytes: 1, fileSystem: faults) })
        defer { Task { await relay.stop() } }
        faults.delaySyncs(.seconds(5))
        let syncsBefore = faults.syncsStarted
        let first = Task { try await relay.post("shop", body: body(#"{"id":"slow-1"}"#)) }
        #expect(await eventually(timeout: .seconds(30)) { faults.syncsStarted > syncsBefore }, "the first request's commit never started")
        // The first request's records wait on a 5 s sync: this one finds the queue full.
        let refused = try await relay.post("shop", body: body(#"{"id":"refused-2"}"#))
        #expect(refused.status == 503)
        #expect(refused.header("retry-after") == "1")
        #expect(refused.header("content-type") == "application/json")
        #expect(try JSONParser.parse(refused.body)["error"]?.stringValue?.isEmpty == false)
        let accepted = try await first.value
        #expect(accepted.status == 200, "the request already queued is still written")
        #expect(bodies(try relay.storedEvents()) == [#"{"id":"slow-1"}"#])
        // Not a duplicate later: the refused event's key was released, so its retry is stored.
        faults.delaySyncs(.zero)
        let retried = try await relay.post("shop", body: body(#"{"id":"refused-2"}"#))
        #expect(retried.status == 200)
        #expect(try JSONParser.parse(retried.body)["accepted"]?.doubleValue == 1)
        #expect(bodies(try relay.storedEvents()) == [#"{"id":"slow-1"}"#, #"{"id":"refused-2"}"#])
        await relay.stop()
    }

    /// README "A failed write is never acknowledged": when a write fails and even its rollback
    /// cannot be synced, the journal refuses every later write (503, Retry-After: 1, JSON error)
    /// even once the disk is healthy again, until the relay restarts; after the restart it
    /// writes again and every acknowledged event is there, no refused one.
    @Test(.timeLimit(.minutes(1)))
    func aFailedRollbackRefusesEveryWriteUntilRestart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let faults = FaultyFileSystem()
        let journalDirectory = directory.path + "/data/journal"
        let relay = try await RestartableRelay(directory: directory, routes: plainRoutes, journal: JournalConfiguration(directory: journalDirectory, fileSystem: faults))
        #expect(try await relay.post("shop", #"{"id":"before"}"#).status == 200)

        // Half the write reaches the file, then fails; truncating it back works but the sync
        // that would make the truncation durable fails too.
        faults.failWrites(EIO, partialWrite: true)
        faults.failSyncs(EIO)
        let failed = try await relay.post("shop", #"{"id":"failed"}"#)
        #expect(failed.status == 503)
        #expect(failed.header("retry-after") == "1")
        #expect(try JSONParser.parse(failed.body)["error"]?.stringValue?.isEmpty == false)

        // The disk is fine again, but the journal no longer knows what is on it: still refused.
        faults.failWrites(nil)
        faults.failSyncs(nil)
        for i in 0..<3 {
            let refused = try await relay.post("shop", "{\"id\":\"later-\(i)\"}")
            #expect(refused.status == 503, "request \(i) after the failed rollback")
            #expect(refused.header("retry-after") == "1")
            #expect(try JSONParser.parse(refused.body)["error"]?.stringValue?.isEmpty == false)
        }
        #expect(try await TestHTTPClient.send(port: relay.server.ingestPort ?? 0, path: "/healthz").status == 200, "still serving")
        await relay.stop()

        // After a restart it writes again, and the journal holds exactly what was acknowledged.
        let restarted = try await RestartableRelay(directory: directory, routes: plainRoutes)
        let after = try await restarted.post("shop", #"{"id":"after"}"#)
        #expect(after.status == 200)
        #expect(try JSONParser.parse(after.body)["accepted"]?.doubleValue == 1)
        #expect(try await restarted.post("shop", #"{"id":"later-0"}"#).status == 200, "a refused event is not taken for a duplicate")
        await restarted.stop()
        #expect(bodies(try journalEvents(journalDirectory)) == [#"{"id":"before"}"#, #"{"id":"after"}"#, #"{"id":"later-0"}"#])
        #expect(try JournalVerifier.verify(directory: journalDirectory).isIntact)
    }
}

@Suite struct AdminTokenHTTPTests {
    static let token = "adm1n-t0ken-for-promises"

    static func routes(port: Int, extra: String = "") -> String {
        """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } },
          "destinations": { "a": { "url": "http://127.0.0.1:\(port)/a" }\(extra) },
          "routes": [ { "name": "all", "to": ["a"] } ] }
        """
    }

    /// README "Admin listener": with RELAY_ADMIN_TOKEN set, `/metrics`, `/admin/routes`,
    /// `POST /admin/replay`, `POST /admin/routes/reload` and `/healthz` all answer 401 without the
    /// token or with a wrong one (and do nothing), and work with it.
    @Test(.timeLimit(.minutes(1)))
    func everyAdminEndpointNeedsTheToken() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: Self.routes(port: port), adminToken: Self.token)
        defer { Task { await relay.stop(); await downstream.stop() } }
        #expect(try await relay.post("shop", body: body(#"{"id":"t-1"}"#)).status == 200)
        #expect(await downstream.wait { $0.count == 1 })
        // A new routes file waits on disk: a reload that gets through would install it.
        try Self.routes(port: port, extra: #", "b": { "url": "http://127.0.0.1:\#(port)/b" }"#).write(toFile: relay.configPath, atomically: true, encoding: .utf8)

        let requests: [(method: String, path: String, body: String)] = [
            ("GET", "/metrics", ""), ("GET", "/admin/routes", ""), ("GET", "/healthz", ""),
            ("POST", "/admin/replay", #"{"filter":{"source":"shop"}}"#), ("POST", "/admin/routes/reload", ""),
        ]
        for request in requests {
            for token in [nil, "wrong", Self.token + "x", String(Self.token.dropLast())] {
                let answer = try await relay.admin(request.path, method: request.method, token: token, body: body(request.body))
                #expect(answer.status == 401, "\(request.method) \(request.path) with token \(token ?? "none")")
                #expect(answer.json?["error"]?.stringValue?.isEmpty == false)
            }
        }
        // A bare token without "Bearer " is refused too.
        let bare = try await TestHTTPClient.send(port: relay.adminPort, path: "/metrics", headers: [("Authorization", Self.token)])
        #expect(bare.status == 401)

        // None of the refused requests did anything: the old routes are in force, nothing replayed.
        let routes = try await relay.admin("/admin/routes", token: Self.token)
        #expect(routes.status == 200)
        #expect(routes.json?["destinations"]?.arrayValue?.compactMap(\.stringValue) == ["a"], "a refused reload installed the new file")
        let metrics = try await TestHTTPClient.send(port: relay.adminPort, path: "/metrics", headers: [("Authorization", "Bearer \(Self.token)")])
        #expect(metrics.status == 200)
        #expect(metrics.text.contains("relay_events_ingested_total"))
        #expect(try await relay.admin("/healthz", token: Self.token).status == 200)

        let replay = try await relay.admin("/admin/replay", method: "POST", token: Self.token, body: body(#"{"filter":{"source":"shop"}}"#))
        #expect(replay.status == 202)
        let replayID = try #require(replay.json?["replay_id"]?.stringValue)
        #expect(await downstream.wait { $0.count == 2 })
        var finished = false
        for _ in 0..<1500 where !finished {
            finished = try await relay.admin("/admin/replays/\(replayID)", token: Self.token).json?["state"]?.stringValue == "finished"
            if !finished { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(finished)
        #expect(downstream.requests.filter { $0.header("x-relay-replay") == "1" }.count == 1, "only the authorized replay was sent")

        let reload = try await relay.admin("/admin/routes/reload", method: "POST", token: Self.token)
        #expect(reload.status == 200)
        #expect(reload.json?["destinations"]?.doubleValue == 2)
        #expect(try await relay.admin("/admin/routes", token: Self.token).json?["destinations"]?.arrayValue?.compactMap(\.stringValue) == ["a", "b"])
        await relay.stop()
        await downstream.stop()
    }

    /// README "Slow and stalled clients": an admin 401 given before the request's body was read
    /// says `Connection: close` and closes the connection, rather than read the rest of a body
    /// it refused.
    @Test(.timeLimit(.minutes(1)))
    func anAdmin401ClosesTheConnection() async throws {
        let relay = try await LiveRelay(routes: plainRoutes, adminToken: Self.token)
        defer { Task { await relay.stop() } }
        for authorization in ["", "Authorization: Bearer wrong\r\n"] {
            let connection = try StalledConnection(
                port: relay.adminPort,
                sending: "POST /admin/replay HTTP/1.1\r\nHost: x\r\n\(authorization)Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            let answer = await connection.trickle(byte: UInt8(ascii: " "), every: .milliseconds(100), for: .seconds(5))
            #expect(answer.hasPrefix("HTTP/1.1 401"), "answered: \(answer.prefix(80))")
            #expect(answer.lowercased().contains("connection: close"), "answered: \(answer)")
            #expect(try await connection.waitForClose(within: 5), "the relay kept the connection of an admin 401 open")
        }
        // With the token, the same request is read to its end and answered on an open connection.
        let authorized = try StalledConnection(
            port: relay.adminPort,
            sending: "POST /admin/routes/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.token)\r\nContent-Length: 0\r\n\r\n"
        )
        let answer = await authorized.answer(within: 5)
        #expect(answer.hasPrefix("HTTP/1.1 200") && !answer.lowercased().contains("connection: close"), "answered: \(answer.prefix(80))")
        #expect(try await !authorized.waitForClose(within: 1))
        await relay.stop()
    }
}

@Suite struct MalformedHTTPTests {
    /// README "Malformed HTTP": a garbage request line, a header without a colon, conflicting
    /// Content-Length, a bad chunk size and a header or request target over about 80 KB get 400
    /// (and the connection is closed); the relay keeps serving.
    @Test(.timeLimit(.minutes(1)))
    func malformedRequestsAre400AndTheRelayKeepsServing() async throws {
        let relay = try await LiveRelay(routes: plainRoutes)
        defer { Task { await relay.stop() } }
        let big = String(repeating: "a", count: 82 * 1024)
        let cases: [(name: String, request: String)] = [
            ("garbage request line", "THIS IS NOT HTTP\r\n\r\n"),
            ("header without a colon", "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nNoColonHere\r\nContent-Length: 2\r\n\r\n{}"),
            ("conflicting Content-Length", "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nContent-Length: 12\r\n\r\n{\"id\":\"cl\"}"),
            ("bad chunk size", "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{\"id\":\"ch\"}\r\n0\r\n\r\n"),
            ("80 KB header", "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\nContent-Length: 2\r\n\r\n{}"),
            ("80 KB request target", "GET /healthz?\(big) HTTP/1.1\r\nHost: x\r\n\r\n"),
        ]
        for (name, request) in cases {
            let (answer, closed) = try await rawExchange(port: relay.ingestPort, Array(request.utf8))
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(name): answered \(answer.prefix(80).debugDescription)")
            #expect(closed, "\(name): the connection stayed open")
            // Still serving, on a new connection.
            let good = try await relay.post("shop", body: body(#"{"id":"good"}"#))
            #expect(good.status == 200, "after \(name)")
        }
        // Nothing of the malformed requests was stored; the good one once (then duplicates).
        #expect(bodies(try relay.storedEvents()) == [#"{"id":"good"}"#])
        // A large header well under the limit is fine: the 400 above was for the size.
        let fine = try await TestHTTPClient.send(
            port: relay.ingestPort, method: "POST", path: "/webhooks/shop",
            headers: [("X-Big", String(repeating: "b", count: 60 * 1024))], body: body(#"{"id":"big-header"}"#)
        )
        #expect(fine.status == 200)
        await relay.stop()
    }
}

@Suite struct DeliveryPagingHTTPTests {
    /// README "/admin/deliveries": a page keeps all matching deliveries of its last event, so an
    /// event routed to three destinations is never split across pages; the next page starts with
    /// the next event, and over all pages no delivery is lost or repeated.
    @Test(.timeLimit(.minutes(1)))
    func aPageKeepsAllDeliveriesOfItsLastEvent() async throws {
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type" } } },
          "destinations": { "a": { "url": "http://127.0.0.1:9/a", "retry": { "max_attempts": 1 } },
                            "b": { "url": "http://127.0.0.1:9/b", "retry": { "max_attempts": 1 } },
                            "c": { "url": "http://127.0.0.1:9/c", "retry": { "max_attempts": 1 } } },
          "routes": [ { "name": "one", "match": { "type": "single" }, "to": ["a"] },
                      { "name": "three", "match": { "type": "fan" }, "to": ["a", "b", "c"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop() } }
        // Oldest first: e1 (1 delivery), e2 (3), e3 (1), e4 (3), e5 (1).
        var ids: [String] = []
        for (index, type) in ["single", "fan", "single", "fan", "single"].enumerated() {
            let response = try await relay.post("shop", body: body("{\"id\":\"e\(index + 1)\",\"type\":\"\(type)\"}"))
            ids.append(try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue))
        }
        let fan: Set<String> = [ids[1], ids[3]]
        var expected: [String] = []
        for id in ids.reversed() { expected += (fan.contains(id) ? ["a", "b", "c"] : ["a"]).map { "\(id):\($0)" } }

        // limit=2: e5 (1 delivery), then e4 whose 3 deliveries would be split by the limit.
        var pages: [[(id: String, event: String)]] = []
        var cursor: String?
        repeat {
            let answer = try await relay.admin("/admin/deliveries?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
            #expect(answer.status == 200)
            let page = (answer.json?["deliveries"]?.arrayValue ?? []).map { ($0["id"]?.stringValue ?? "", $0["event_id"]?.stringValue ?? "") }
            pages.append(page)
            cursor = answer.json?["next_cursor"]?.stringValue
        } while cursor != nil && pages.count < 10
        #expect(pages.count == 3)
        #expect(pages.first?.map(\.id) == ["\(ids[4]):a"] + ["a", "b", "c"].map { "\(ids[3]):\($0)" }, "the first page ends with all of e4")
        #expect(pages.dropFirst().first?.first?.event == ids[2], "the second page starts with e3, the next event")
        #expect(pages.dropFirst().first?.map(\.event).filter { $0 == ids[1] }.count == 3, "and ends with all of e2")
        // No page splits an event: each event's deliveries are on one page.
        for id in ids {
            #expect(pages.filter { $0.contains { $0.event == id } }.count == 1, "\(id) is on one page")
        }
        let all = pages.flatMap { $0.map(\.id) }
        #expect(all == expected, "every delivery exactly once, newest event first")
        await relay.stop()
    }

    /// README: `limit` is 1–1000, for `/admin/events` and `/admin/deliveries`; else 400 naming it.
    @Test func limitsOutsideOneToAThousandAre400() async throws {
        let relay = try await LiveRelay(routes: plainRoutes)
        defer { Task { await relay.stop() } }
        for path in ["/admin/events", "/admin/deliveries"] {
            for bad in ["1001", "5000", "0", "-1", "abc", ""] {
                let answer = try await relay.admin("\(path)?limit=\(bad)")
                #expect(answer.status == 400, "\(path)?limit=\(bad)")
                #expect(answer.json?["error"]?.stringValue?.hasPrefix("limit") == true, "\(path)?limit=\(bad): \(String(describing: answer.json))")
            }
            for good in ["1", "1000"] {
                #expect(try await relay.admin("\(path)?limit=\(good)").status == 200, "\(path)?limit=\(good)")
            }
        }
        await relay.stop()
    }
}

@Suite struct DeduplicationDefaultsHTTPTests {
    /// README "De-duplication": keys are kept for 7 days, at most 1,000,000 of them — the index the
    /// server builds has those limits, and over HTTP a key older than 7 days is forgotten (the
    /// retry is stored again) while a younger one is still a duplicate.
    @Test func keysAreKeptSevenDaysByDefault() async throws {
        let day: Int64 = 86_400
        let t0 = Timestamp(seconds: 1_800_000_000)
        let clock = SettableClock(t0)
        let relay = try await LiveRelay(routes: plainRoutes, clock: clock)
        defer { Task { await relay.stop() } }
        let configuration = try #require(relay.server.ingestStore).deduplication.configuration
        #expect(configuration.windowMillis == 7 * day * 1000)
        #expect(configuration.maxKeys == 1_000_000)

        func post(_ id: String) async throws -> (accepted: Double?, duplicates: Double?, id: String?) {
            let response = try await relay.post("shop", body: body("{\"id\":\"\(id)\"}"))
            #expect(response.status == 200)
            let json = try JSONParser.parse(response.body)
            return (json["accepted"]?.doubleValue, json["duplicates"]?.doubleValue, json["ids"]?.arrayValue?.first?.stringValue)
        }
        let old = try await post("old")
        clock.set(Timestamp(seconds: t0.seconds + day))
        let young = try await post("young")
        // Six days and 23 hours later the old key is still known.
        clock.set(Timestamp(seconds: t0.seconds + 7 * day - 3600))
        let oldRetry = try await post("old")
        #expect(oldRetry.duplicates == 1 && oldRetry.accepted == 0)
        #expect(oldRetry.id == old.id, "a duplicate answers the id stored the first time")
        // Seven days and an hour: the old key is gone (stored again), the 6-day-old one is kept.
        clock.set(Timestamp(seconds: t0.seconds + 7 * day + 3600))
        let oldLate = try await post("old")
        #expect(oldLate.accepted == 1 && oldLate.duplicates == 0, "a key older than 7 days is forgotten")
        #expect(oldLate.id != old.id)
        let youngRetry = try await post("young")
        #expect(youngRetry.duplicates == 1 && youngRetry.id == young.id, "a key younger than 7 days is kept")
        #expect(try relay.storedEvents().count == 3)
        await relay.stop()
    }
}

@Suite struct CheckpointTriggerTests {
    /// README "Forwarding", start-up: a checkpoint is written every `--checkpoint-records` new
    /// records, default 200,000 (the scheduler's and the server configuration's default, and
    /// `relay serve`'s), and every 10 minutes.
    @Test func defaultsAre200000RecordsAndTenMinutes() async throws {
        let scheduler = DeliveryScheduler.Configuration()
        #expect(scheduler.checkpointEveryRecords == 200_000)
        #expect(scheduler.checkpointInterval == .seconds(600))
        let server = RelayServerConfiguration(configPath: "routes.json", dataDirectory: "data")
        #expect(server.scheduler.checkpointEveryRecords == 200_000)
        #expect(server.scheduler.checkpointInterval == .seconds(600))
        let help = try await runRelay(["serve", "--help"])
        let option = help.out.components(separatedBy: "\n  --").first { $0.hasPrefix("checkpoint-records ") }
        #expect(option?.contains("(default: 200000)") == true, "relay serve --help: \(help.out)")
    }

    /// Every N new records: with N = 10 (an event and its routing decision are 2 records), the
    /// first checkpoint is saved at record 10, none before, and the next after 10 more records
    /// counted from the last one (its marker record included).
    @Test(.timeLimit(.minutes(1)))
    func aCheckpointIsSavedEveryNRecords() async throws {
        let relay = try await LiveRelay(routes: plainRoutes, scheduler: DeliveryScheduler.Configuration(checkpointEveryRecords: 10, checkpointInterval: .seconds(3600)))
        defer { Task { await relay.stop() } }
        let store = CheckpointStore(directory: relay.directory.path + "/data/journal")
        for i in 0..<5 { #expect(try await relay.post("shop", body: body("{\"id\":\"a\(i)\"}")).status == 200) }
        #expect(try await eventually(timeout: .seconds(30)) { try store.load()?.sequence == 10 }, "no checkpoint at record 10")
        #expect(try checkpointMarkers(relay) == [10], "one checkpoint, as of record 10")
        // The marker is record 11; ten records later (21) the next one is due.
        for i in 0..<4 { #expect(try await relay.post("shop", body: body("{\"id\":\"b\(i)\"}")).status == 200) }
        #expect(try await relay.post("shop", body: body(#"{"id":"b4"}"#)).status == 200)
        #expect(try await eventually(timeout: .seconds(30)) { try store.load()?.sequence == 21 }, "no checkpoint at record 21")
        #expect(try checkpointMarkers(relay) == [10, 21])
        await relay.stop()
    }

    /// Every interval if anything changed: far below the record count, a change made once the
    /// interval has passed is checkpointed.
    @Test(.timeLimit(.minutes(1)))
    func aCheckpointIsSavedAfterTheIntervalWhenSomethingChanged() async throws {
        let relay = try await LiveRelay(routes: plainRoutes, scheduler: DeliveryScheduler.Configuration(checkpointEveryRecords: 1_000_000, checkpointInterval: .seconds(1)))
        defer { Task { await relay.stop() } }
        let store = CheckpointStore(directory: relay.directory.path + "/data/journal")
        #expect(try await relay.post("shop", body: body(#"{"id":"first"}"#)).status == 200)
        // Nothing else happens: the relay is idle, and the interval alone must save the change
        // (far below the record threshold).
        #expect(try await eventually(timeout: .seconds(30)) { (try store.load()?.sequence ?? 0) >= 2 }, "an idle relay saved nothing after the interval")
        #expect(try checkpointMarkers(relay).last.map { $0 >= 2 } == true)
        // And a later change is saved after the next interval.
        #expect(try await relay.post("shop", body: body(#"{"id":"second"}"#)).status == 200)
        #expect(try await eventually(timeout: .seconds(30)) { (try store.load()?.sequence ?? 0) >= 4 }, "the second change was not saved after the interval")
        await relay.stop()
    }

    /// At shutdown (SIGTERM to `relay serve`): a relay that stops with changes it has not
    /// checkpointed saves them, and the next start begins from that checkpoint (it reads only the
    /// marker record after it) with its de-duplication keys.
    @Test(.timeLimit(.minutes(1)))
    func aCheckpointIsSavedAtShutdownAndUsedAtStart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("routes.json", plainRoutes)
        let process = try RelayProcess(
            arguments: ["serve", "--config", directory.path + "/routes.json", "--data", directory.path + "/data",
                        "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--checkpoint-records", "1000000"],
            logPath: directory.path + "/relay.log"
        )
        let port = try await process.waitForPort(message: "ingest listening")
        var first: String?
        for i in 0..<3 {
            let response = try await TestHTTPClient.send(port: port, method: "POST", path: "/webhooks/shop", body: body("{\"id\":\"s\(i)\"}"))
            #expect(response.status == 200)
            if i == 0 { first = try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue }
        }
        let store = CheckpointStore(directory: directory.path + "/data/journal")
        #expect(try store.load() == nil, "no checkpoint is due before shutdown")
        process.signal(SIGTERM)
        #expect(await process.waitForExit() == 0, "relay log:\n\(process.log)")
        #expect(try store.load()?.sequence == 6, "the shutdown checkpoint covers all 3 events and their decisions")

        let restarted = try await RestartableRelay(directory: directory, routes: plainRoutes)
        let recovered = try #require(restarted.server.deliveryStore)
        #expect(recovered.recoveredFromCheckpoint == 6)
        #expect(recovered.recoveredRecords == 1, "only the checkpoint's marker record is read after it")
        let again = try JSONParser.parse(try await restarted.post("shop", #"{"id":"s0"}"#).body)
        #expect(again["duplicates"]?.doubleValue == 1 && again["ids"]?.arrayValue?.first?.stringValue == first, "de-duplication keys came back from the checkpoint")
        await restarted.stop()
    }
}

@Suite struct HexSignatureHTTPTests {
    /// README "Generic": signatures are compared as canonical text, hex in either case — an
    /// uppercase and a lowercase hex HMAC both verify, with and without a `sha256=` prefix; a
    /// wrong one in either case does not.
    @Test func hexSignaturesVerifyInEitherCase() async throws {
        let routes = """
        { "sources": {
            "hex": { "provider": "generic", "secret": "shh", "signature": { "scheme": "hmac-sha256", "header": "X-Sig", "encoding": "hex" } },
            "github": { "provider": "generic", "secret": "shh",
                        "signature": { "scheme": "hmac-sha256", "header": "X-Hub-Signature-256", "encoding": "hex", "prefix": "sha256=" } } } }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop() } }
        func send(_ source: String, _ header: String, _ text: String, _ signature: (String) -> String) async throws -> Int {
            let bytes = body(text)
            let hex = Digest.hex(Signatures.hmacSHA256(key: Array("shh".utf8), message: bytes))
            return try await relay.post(source, body: bytes, headers: [("Content-Type", "application/json"), (header, signature(hex))]).status
        }
        for (source, header, prefix) in [("hex", "X-Sig", ""), ("github", "X-Hub-Signature-256", "sha256=")] {
            #expect(try await send(source, header, "{\"n\":\"\(source)-lower\"}") { prefix + $0.lowercased() } == 200, "\(source) lowercase")
            #expect(try await send(source, header, "{\"n\":\"\(source)-upper\"}") { prefix + $0.uppercased() } == 200, "\(source) uppercase")
            #expect(try await send(source, header, "{\"n\":\"\(source)-mixed\"}") { prefix + String($0.prefix(32)).uppercased() + $0.dropFirst(32) } == 200, "\(source) mixed case")
            // The same text with one digit changed is refused, uppercase or not.
            func flipped(_ hex: String) -> String { (hex.first == "0" ? "1" : "0") + hex.dropFirst() }
            #expect(try await send(source, header, "{\"n\":\"\(source)-bad\"}") { prefix + flipped($0).uppercased() } == 401, "\(source) wrong signature")
            #expect(try await send(source, header, "{\"n\":\"\(source)-bad2\"}") { prefix + flipped($0) } == 401, "\(source) wrong signature")
        }
        #expect(try relay.storedEvents().count == 6)
        await relay.stop()
    }
}
