import Foundation
import RelayCore
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// README "Ordering", an operator's side, through the real binary and its CLI: a dead delivery
/// to a destination with `"on_dead": "hold"` blocks its order's later deliveries, across a
/// `kill -9` and restart, until `relay destinations retry` (the key moves on once it succeeds)
/// or `relay destinations skip` (it stays dead, the key moves on). On both stores.
@Suite struct HeldKeyCLITests {
    typealias Store = ServedRelay.Store

    @Test(.timeLimit(.minutes(2)), arguments: Store.allCases)
    func aHeldKeyWaitsAcrossKillNineUntilRetriedOrSkipped(_ store: Store) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let downstream = TestDownstream()
        let port = try await downstream.start()
        // /flaky/2: each event's first two requests answer 503, later ones 204. With two
        // attempts allowed, every delivery dies once; a retry then succeeds.
        let config = try dir.write("routes.json", """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "order_id": "/order_id" } } },
          "destinations": { "ordered": { "url": "http://127.0.0.1:\(port)/flaky/2",
                                         "retry": { "max_attempts": 2, "initial_backoff_ms": 20, "max_backoff_ms": 40 },
                                         "ordering": { "key": "order_id", "on_dead": "hold" } } },
          "routes": [ { "name": "all", "to": ["ordered"] } ] }
        """)
        let served = try ServedRelay(config: config, directory: dir.path, store: store)
        func start() async throws -> (RelayProcess, ingest: Int, admin: [String]) { try await served.start() }
        func post(_ ingest: Int, _ id: String, order: String) async throws -> String {
            let body = "{\"id\":\"\(id)\",\"type\":\"order.updated\",\"order_id\":\"\(order)\"}"
            let response = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", body: Array(body.utf8))
            return try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
        }
        func requests(_ id: String) -> Int { downstream.requests.filter { $0.header("webhook-id") == id }.count }
        /// `relay destinations held ordered --json`: key → (delivery, waiting).
        func held(_ admin: [String]) async throws -> [String: (delivery: String, waiting: Int)] {
            let listed = try await runRelay(["destinations", "held", "ordered", "--json"] + admin)
            #expect(listed.status == 0, "\(listed.err)")
            let destination = try JSONParser.parse(Array(listed.out.utf8))["destinations"]?.arrayValue?.first { $0["name"]?.stringValue == "ordered" }
            var keys: [String: (delivery: String, waiting: Int)] = [:]
            for entry in destination?["held_keys"]?.arrayValue ?? [] {
                if let key = entry["key"]?.stringValue, let delivery = entry["delivery"]?.stringValue {
                    keys[key] = (delivery, (entry["waiting"]?.doubleValue).map { Int($0) } ?? -1)
                }
            }
            return keys
        }

        var (relay, ingest, admin) = try await start()
        let a = try await post(ingest, "a", order: "o1")
        let b = try await post(ingest, "b", order: "o1")
        let c = try await post(ingest, "c", order: "o2")
        // a and c die after two attempts each and hold their orders; b waits behind a.
        let bothHeld = try await eventually(timeout: .seconds(20)) { try await held(admin).count == 2 }
        var keys = try await held(admin)
        try #require(bothHeld, "\(keys)")
        #expect(keys["o1"]?.delivery == "\(a):ordered" && keys["o1"]?.waiting == 1, "\(keys)")
        #expect(keys["o2"]?.delivery == "\(c):ordered" && keys["o2"]?.waiting == 0, "\(keys)")
        let table = try await runRelay(["destinations", "held"] + admin)
        #expect(table.status == 0 && table.out.contains("o1") && table.out.contains("\(a):ordered") && table.out.contains("WAITING"), "\(table.out)\(table.err)")
        #expect(requests(a) == 2 && requests(c) == 2 && requests(b) == 0, "a \(requests(a)), b \(requests(b)), c \(requests(c))")

        // kill -9: the holds come back from the store.
        relay.signal(SIGKILL)
        _ = await relay.waitForExit()
        (relay, ingest, admin) = try await start()
        keys = try await held(admin)
        #expect(keys["o1"]?.delivery == "\(a):ordered" && keys["o1"]?.waiting == 1 && keys["o2"]?.delivery == "\(c):ordered", "after kill -9: \(keys)")
        try await Task.sleep(for: .milliseconds(500))
        #expect(requests(b) == 0, "b went out while its order was held")

        // Retry a: it succeeds (its third request), o1 moves on, and b goes out (and dies: held again by b).
        let retried = try await runRelay(["destinations", "retry", "\(a):ordered"] + admin)
        #expect(retried.status == 0 && retried.out.contains("sent again as replay"), "\(retried.out)\(retried.err)")
        let movedOn = try await eventually(timeout: .seconds(20)) { try await held(admin)["o1"]?.delivery == "\(b):ordered" }
        keys = try await held(admin)
        #expect(movedOn, "\(keys)")
        #expect(requests(a) == 3 && requests(b) == 2, "a \(requests(a)), b \(requests(b))")
        #expect(downstream.requests.last { $0.header("webhook-id") == a }?.status == 204)

        // Skip c: it stays dead, o2 moves on: d (o2) is sent.
        let skipped = try await runRelay(["destinations", "skip", "\(c):ordered"] + admin)
        #expect(skipped.status == 0 && skipped.out.contains("skipped") && skipped.out.contains("o2"), "\(skipped.out)\(skipped.err)")
        keys = try await held(admin)
        #expect(keys["o2"] == nil, "\(keys)")
        let d = try await post(ingest, "d", order: "o2")
        #expect(await eventually(timeout: .seconds(20)) { requests(d) >= 1 }, "d was not sent after its order's hold was skipped")
        #expect(requests(c) == 2, "a skipped delivery is not sent again")

        // Bad requests: one line naming the problem, exit 1.
        let again = try await runRelay(["destinations", "skip", "\(c):ordered"] + admin)
        #expect(again.status == 1 && again.err.contains("409"), "\(again.out)\(again.err)")
        let unknown = try await runRelay(["destinations", "skip", "nope:ordered"] + admin)
        #expect(unknown.status == 1 && unknown.err.contains("404"), "\(unknown.out)\(unknown.err)")

        relay.signal(SIGTERM)
        #expect(await relay.waitForExit() == 0)
        await served.dispose()
        await downstream.stop()
    }
}
