import Foundation
import RelayCore
import RelayJournal
import RelayTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The relay's first promise, tested against the real binary: kill -9 under load never loses an
/// event that was answered 200.
final class AckLedger: Sendable {
    private let acked = Mutex<[String: String]>([:])
    func record(_ id: String, body: String) { acked.withLock { $0[id] = body } }
    var count: Int { acked.withLock { $0.count } }
    var all: [String: String] { acked.withLock { $0 } }
}

@Suite struct CrashTests {
    static let routes = """
    { "sources": { "shop": { "provider": "generic" } } }
    """

    func startRelay(_ dir: TemporaryDirectory, cycle: Int) async throws -> (RelayProcess, Int) {
        let process = try RelayProcess(
            arguments: ["serve", "--config", dir.path + "/routes.json", "--data", dir.path + "/data",
                        "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            logPath: dir.path + "/relay-\(cycle).log"
        )
        return (process, try await process.waitForPort(message: "ingest listening"))
    }

    @Test(.timeLimit(.minutes(3)))
    func killNineUnderLoadLosesNoAcknowledgedEvent() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("routes.json", Self.routes)
        let acknowledged = AckLedger()  // event id → the body we sent
        var refusedOrCut = 0

        for cycle in 0..<3 {
            let (relay, port) = try await startRelay(dir, cycle: cycle)
            let clients = Task {
                await withTaskGroup(of: Int.self) { group in
                    for client in 0..<16 {
                        group.addTask {
                            var failures = 0
                            for i in 0..<5000 {
                                let body = "{\"cycle\":\(cycle),\"client\":\(client),\"i\":\(i),\"pad\":\"\(String(repeating: "x", count: 200))\"}"
                                guard let response = try? await TestHTTPClient.send(
                                    port: port, method: "POST", path: "/webhooks/shop",
                                    headers: [("Content-Type", "application/json")], body: Array(body.utf8), timeout: 5
                                ) else {
                                    failures += 1
                                    break  // the relay is gone
                                }
                                if response.status == 200, let ids = try? JSONParser.parse(response.body)["ids"]?.arrayValue {
                                    for id in ids.compactMap(\.stringValue) { acknowledged.record(id, body: body) }
                                }
                            }
                            return failures
                        }
                    }
                    return await group.reduce(0, +)
                }
            }
            // Let load build up, then kill without warning mid-stream.
            let ackedBefore = acknowledged.count
            let deadline = Date().addingTimeInterval(20)
            while acknowledged.count < ackedBefore + 200 && Date() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            relay.signal(SIGKILL)
            _ = await relay.waitForExit()
            refusedOrCut += await clients.value
            #expect(acknowledged.count >= ackedBefore + 200, "cycle \(cycle) made progress before the kill")
        }

        // Restart: recovery truncates any torn tail; then a clean SIGTERM stop exits 0.
        let (relay, port) = try await startRelay(dir, cycle: 99)
        #expect(try await TestHTTPClient.send(port: port, path: "/healthz").status == 200)
        relay.signal(SIGTERM)
        #expect(await relay.waitForExit() == 0)

        let reader = JournalReader(directory: dir.path + "/data/journal")
        var stored: [String: [UInt8]] = [:]
        while let record = try reader.next() {
            guard record.type == .event else { continue }
            let event = try Event(decoding: record.payload)
            stored[event.id] = event.body
        }
        let acked = acknowledged.all
        let missing = acked.filter { stored[$0.key] == nil }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.keys.sorted().prefix(5))")
        for (id, body) in acked {
            #expect(stored[id] == Array(body.utf8), "stored body of \(id) matches what was sent")
        }
        #expect(try JournalVerifier.verify(directory: dir.path + "/data/journal").isIntact)
        #expect(refusedOrCut > 0, "the kills really interrupted clients mid-stream")
        print("crash test: \(acked.count) acknowledged, \(stored.count) stored (\(stored.count - acked.count) stored but never acknowledged)")
    }
}

/// kill -9 while deliveries are pending and their destination is down: after a restart, and
/// once the destination is back, every event is delivered (at least once).
@Suite struct PendingDeliveryCrashTests {
    /// With `checkpoints`, the first run saves a checkpoint every 10 records, so the restart
    /// starts from one and reads only the records after it; without, it reads the whole journal.
    @Test(.timeLimit(.minutes(2)), arguments: [false, true])
    func pendingDeliveriesSurviveKillNine(checkpoints: Bool) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let port = unusedLoopbackPort()
        try dir.write("routes.json", forwardingRoutes(
            ["orders": "{ \"url\": \"http://127.0.0.1:\(port)/orders\", \"retry\": { \"max_attempts\": 1000, \"initial_backoff_ms\": 50, \"max_backoff_ms\": 200 } }"],
            routes: #"[{"name": "all", "to": ["orders"]}]"#
        ))
        func start(_ cycle: Int) async throws -> (RelayProcess, Int) {
            let process = try RelayProcess(
                // A window of 8: most pending deliveries wait in the journal, so recovery must
                // also rebuild the part that was never in memory.
                arguments: ["serve", "--config", dir.path + "/routes.json", "--data", dir.path + "/data", "--listen", "127.0.0.1:0",
                            "--admin-listen", "127.0.0.1:0", "--delivery-window", "8", "--checkpoint-records", checkpoints ? "10" : "1000000"],
                logPath: dir.path + "/relay-\(cycle).log"
            )
            return (process, try await process.waitForPort(message: "ingest listening"))
        }
        let (first, ingest) = try await start(0)
        var ids: Set<String> = []
        for i in 0..<30 {
            let response = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", body: Array("{\"id\":\"k\(i)\"}".utf8))
            #expect(response.status == 200)
            ids.formUnion(try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        // Let some attempts fail against the dead destination and be journaled, then kill.
        try #require(await eventually(timeout: .seconds(30)) { first.log.contains("delivery failed; will retry") }, "\(first.log)")
        let checkpointPath = dir.path + "/data/journal/checkpoint.bin"
        if checkpoints {
            try #require(await eventually(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: checkpointPath) }, "no checkpoint was written")
        } else {
            #expect(!FileManager.default.fileExists(atPath: checkpointPath))
        }
        first.signal(SIGKILL)
        _ = await first.waitForExit()

        let downstream = TestDownstream()
        _ = try await downstream.start(port: port)
        let (second, ingest2) = try await start(1)
        #expect(second.log.contains("checkpoint=none") != checkpoints, "start-up used the checkpoint only when one was saved")
        // The de-duplication index came back too (from the checkpoint and the records after it).
        let again = try await TestHTTPClient.send(port: ingest2, method: "POST", path: "/webhooks/shop", body: Array("{\"id\":\"k29\"}".utf8))
        #expect(try JSONParser.parse(again.body)["duplicates"]?.doubleValue == 1)
        let delivered = await downstream.wait(timeout: .seconds(30)) { requests in
            Set(requests.compactMap { $0.header("webhook-id") }).isSuperset(of: ids)
        }
        #expect(delivered, "every acknowledged event reached the destination after the restart")
        if !delivered {
            let got = Set(downstream.requests.compactMap { $0.header("webhook-id") })
            print("missing after restart: \(ids.subtracting(got).sorted())\nfirst run's log (end):\n\(first.log.suffix(4000))\nsecond run's log (end):\n\(second.log.suffix(6000))")
        }
        let received = downstream.requests.compactMap { $0.header("webhook-id") }
        print("pending-delivery crash test (checkpoints: \(checkpoints)): \(ids.count) events, \(received.count) deliveries received, \(received.count - Set(received).count) duplicates")
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0)
        await downstream.stop()
    }
}
