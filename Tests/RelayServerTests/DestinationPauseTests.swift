import Foundation
import RelayCore
import RelayTesting
import Testing

/// An operator's pause, through the real binary and its CLI: deliveries wait while paused, the
/// pause holds across a restart and a routes reload, and a resume sends what waited. On both
/// stores.
@Suite struct DestinationPauseTests {
    typealias Store = ServedRelay.Store

    @Test(.timeLimit(.minutes(2)), arguments: Store.allCases)
    func aPauseHoldsAcrossARestartAndAReloadUntilResumed(_ store: Store) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let config = try dir.write("routes.json", forwardingRoutes(
            ["orders": fastRetry("http://127.0.0.1:\(port)/orders"), "audit": fastRetry("http://127.0.0.1:\(port)/audit")],
            routes: #"[{"name": "all", "to": ["orders", "audit"]}]"#
        ))
        let served = try ServedRelay(config: config, directory: dir.path, store: store)
        func start() async throws -> (RelayProcess, ingest: Int, admin: [String]) { try await served.start() }
        func post(_ ingest: Int, _ id: String) async throws -> String {
            let response = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", body: Array("{\"id\":\"\(id)\",\"type\":\"order.paid\"}".utf8))
            return try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
        }
        func states(_ admin: [String]) async throws -> [String: String] {
            let listed = try await runRelay(["destinations", "list", "--json"] + admin)
            #expect(listed.status == 0, "\(listed.err)")
            let destinations = try JSONParser.parse(Array(listed.out.utf8))["destinations"]?.arrayValue ?? []
            return Dictionary(uniqueKeysWithValues: destinations.compactMap { d in d["name"]?.stringValue.map { ($0, d["state"]?.stringValue ?? "") } })
        }

        var (relay, ingest, admin) = try await start()
        let paused = try await runRelay(["destinations", "pause", "orders"] + admin)
        #expect(paused.status == 0 && paused.out.hasPrefix("orders: paused"), "\(paused.out)\(paused.err)")
        let first = try await post(ingest, "p1")
        // The other destination gets it; the paused one does not.
        #expect(await downstream.wait(timeout: .seconds(20)) { $0.contains { $0.path == "/audit" && $0.header("webhook-id") == first } })
        #expect(try await states(admin) == ["orders": "paused", "audit": "healthy"])

        relay.signal(SIGTERM)
        #expect(await relay.waitForExit() == 0)
        (relay, ingest, admin) = try await start()
        let second = try await post(ingest, "p2")
        #expect(await downstream.wait(timeout: .seconds(20)) { $0.contains { $0.path == "/audit" && $0.header("webhook-id") == second } })
        #expect(try await states(admin)["orders"] == "paused", "after a restart")
        relay.signal(SIGHUP)
        try #require(await eventually(timeout: .seconds(20)) { relay.log.contains("routes reloaded") }, "\(relay.log)")
        #expect(try await states(admin)["orders"] == "paused", "after a reload")
        try await Task.sleep(for: .milliseconds(300))
        #expect(downstream.requests(at: "/orders").count == 0, "nothing sent to a paused destination")
        let list = try await runRelay(["destinations", "list"] + admin)
        #expect(list.status == 0 && list.out.contains("orders") && list.out.contains("paused"), "\(list.out)")

        let resumed = try await runRelay(["destinations", "resume", "orders"] + admin)
        #expect(resumed.status == 0 && resumed.out.hasPrefix("orders: healthy"), "\(resumed.out)\(resumed.err)")
        #expect(await downstream.wait(timeout: .seconds(20)) { Set($0.filter { $0.path == "/orders" }.compactMap { $0.header("webhook-id") }) == [first, second] })
        let unknown = try await runRelay(["destinations", "pause", "nowhere"] + admin)
        #expect(unknown.status == 1 && unknown.err.contains("404") && unknown.err.contains("nowhere"), "\(unknown.err)")
        relay.signal(SIGTERM)
        #expect(await relay.waitForExit() == 0)
        await served.dispose()
        await downstream.stop()
    }
}
