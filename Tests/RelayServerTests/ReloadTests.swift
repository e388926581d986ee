import Foundation
import RelayCore
import RelayServer
import RelayTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

func routesFile(route: String, type: String, destination: String) -> String {
    """
    { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type" } } },
      "destinations": { "a": { "url": "http://127.0.0.1:9/a" }, "b": { "url": "http://127.0.0.1:9/b" } },
      "routes": [ { "name": "\(route)", "match": { "type": "\(type)" }, "to": ["\(destination)"] } ] }
    """
}

@Suite struct ReloadTests {
    @Test func reloadWhileIngestRunsRoutesEveryEventByExactlyOneVersion() async throws {
        let first = routesFile(route: "r1", type: "order.*", destination: "a")
        let relay = try await LiveRelay(routes: first)
        let versionA = relay.server.pipeline.currentConfig.version
        let stop = Atomic<Bool>(false)
        let load = Task {
            var sent = 0
            while !stop.load(ordering: .relaxed) && sent < 5000 {
                let response = try await relay.post("shop", body: Array("{\"id\":\"e\(sent)\",\"type\":\"order.paid\"}".utf8))
                #expect(response.status == 200)
                sent += 1
            }
            return sent
        }
        // Reload only once some events are stored under the first rules: under a loaded CI
        // machine a fixed sleep could pass before the first request had landed.
        let deadline = ContinuousClock.now + .seconds(10)
        while try relay.storedDecisions().count < 5, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try #require(try relay.storedDecisions().count >= 5, "no events were stored under the first rules within 10 s")

        try routesFile(route: "r2", type: "order.*", destination: "b").write(toFile: relay.configPath, atomically: true, encoding: .utf8)
        let ok = try await TestHTTPClient.send(port: relay.adminPort, method: "POST", path: "/admin/routes/reload")
        #expect(ok.status == 200)
        let versionB = try JSONParser.parse(ok.body)["version"]?.stringValue ?? ""
        #expect(!versionB.isEmpty && versionB != versionA)
        // Requests that took the old snapshot just before the reload may still be finishing;
        // give them a moment, then everything stored later must use the new rules.
        try await Task.sleep(for: .milliseconds(200))
        let afterValid = try relay.storedDecisions().count
        try await Task.sleep(for: .milliseconds(100))

        try "{ \"sources\": {}, \"routes\": [ { \"name\": \"x\", \"to\": [\"nowhere\"] } ] }".write(toFile: relay.configPath, atomically: true, encoding: .utf8)
        let rejected = try await TestHTTPClient.send(port: relay.adminPort, method: "POST", path: "/admin/routes/reload")
        #expect(rejected.status == 422)
        let body = try JSONParser.parse(rejected.body)
        #expect(body["version"]?.stringValue == versionB)
        let errors = body["errors"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(errors.contains("routes.json: routes[0].to[0]: unknown destination \"nowhere\" (known: )"))
        #expect(errors.contains("routes.json: sources: must declare at least one source"))
        let current = try await TestHTTPClient.send(port: relay.adminPort, path: "/admin/routes")
        #expect(try JSONParser.parse(current.body)["routes"] == .array([.string("r2")]))
        try await Task.sleep(for: .milliseconds(100))
        stop.store(true, ordering: .relaxed)
        let sent = try await load.value

        let decisions = try relay.storedDecisions()
        #expect(decisions.count == sent)
        for (index, decision) in decisions.enumerated() {
            // Each event was routed by one whole version, never a mix.
            switch decision.configVersion {
            case versionA: #expect(decision.routes == ["r1"] && decision.destinations == ["a"])
            case versionB: #expect(decision.routes == ["r2"] && decision.destinations == ["b"])
            default: Issue.record("decision \(index) has unknown version \(decision.configVersion)")
            }
        }
        #expect(decisions.contains { $0.configVersion == versionA })
        // Once the reload answered, every later event used the new rules (the invalid file changed nothing).
        #expect(decisions[afterValid...].allSatisfy { $0.configVersion == versionB })
        await relay.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func sighupReloadsTheRealBinaryAndKeepsTheOldRulesOnError() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = try dir.write("routes.json", routesFile(route: "r1", type: "order.*", destination: "a"))
        let relay = try RelayProcess(
            arguments: ["serve", "--config", config, "--data", dir.path + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            logPath: dir.path + "/relay.log"
        )
        let admin = try await relay.waitForPort(message: "admin listening")
        func routes() async throws -> JSONValue? {
            try JSONParser.parse(try await TestHTTPClient.send(port: admin, path: "/admin/routes").body)["routes"]
        }
        #expect(try await routes() == .array([.string("r1")]))

        try routesFile(route: "r2", type: "order.*", destination: "b").write(toFile: config, atomically: true, encoding: .utf8)
        relay.signal(SIGHUP)
        var current = try await routes()
        for _ in 0..<200 where current != .array([.string("r2")]) {
            try await Task.sleep(for: .milliseconds(20))
            current = try await routes()
        }
        #expect(current == .array([.string("r2")]))

        try "{ not json".write(toFile: config, atomically: true, encoding: .utf8)
        relay.signal(SIGHUP)
        for _ in 0..<200 where !relay.log.contains("routes reload rejected") {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(relay.log.contains("routes reload rejected"))
        #expect(relay.log.contains("routes.json: (top level): not valid JSON"))
        #expect(try await routes() == .array([.string("r2")]))
        relay.signal(SIGTERM)
        #expect(await relay.waitForExit() == 0)
    }
}
