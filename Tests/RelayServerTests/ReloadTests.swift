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
        // Set once the valid reload has answered: a request sent after that must be routed by
        // the new rules; one sent before may have taken either snapshot.
        let reloaded = Atomic<Bool>(false)
        let stop = Atomic<Bool>(false)
        let sentAfterReload = Atomic<Int>(0)
        let load = Task {
            var sent: [(id: String, afterReload: Bool)] = []
            while !stop.load(ordering: .relaxed) && sent.count < 5000 {
                let afterReload = reloaded.load(ordering: .acquiring)
                let response = try await relay.post("shop", body: Array("{\"id\":\"e\(sent.count)\",\"type\":\"order.paid\"}".utf8))
                #expect(response.status == 200)
                let id = try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue ?? ""
                sent.append((id, afterReload))
                if afterReload { sentAfterReload.add(1, ordering: .relaxed) }
            }
            return sent
        }
        // Reload only once some events are stored under the first rules.
        let deadline = ContinuousClock.now + .seconds(30)
        while try relay.storedDecisions().count < 5, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try #require(try relay.storedDecisions().count >= 5, "no events were stored under the first rules within 30 s")

        try routesFile(route: "r2", type: "order.*", destination: "b").write(toFile: relay.configPath, atomically: true, encoding: .utf8)
        let ok = try await TestHTTPClient.send(port: relay.adminPort, method: "POST", path: "/admin/routes/reload")
        #expect(ok.status == 200)
        reloaded.store(true, ordering: .releasing)
        let versionB = try JSONParser.parse(ok.body)["version"]?.stringValue ?? ""
        #expect(!versionB.isEmpty && versionB != versionA)

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
        // Let some requests be sent after both reloads before stopping the load.
        let more = ContinuousClock.now + .seconds(30)
        while sentAfterReload.load(ordering: .relaxed) < 20, ContinuousClock.now < more {
            try await Task.sleep(for: .milliseconds(10))
        }
        stop.store(true, ordering: .relaxed)
        let sent = try await load.value
        try #require(sent.filter(\.afterReload).count >= 20, "too few requests were sent after the reload to check it")

        let decisions = try relay.storedDecisions()
        #expect(decisions.count == sent.count)
        let versionByEvent = Dictionary(decisions.map { ($0.eventID, $0.configVersion) }, uniquingKeysWith: { first, _ in first })
        for (index, decision) in decisions.enumerated() {
            // Each event was routed by one whole version, never a mix.
            switch decision.configVersion {
            case versionA: #expect(decision.routes == ["r1"] && decision.destinations == ["a"])
            case versionB: #expect(decision.routes == ["r2"] && decision.destinations == ["b"])
            default: Issue.record("decision \(index) has unknown version \(decision.configVersion)")
            }
        }
        #expect(decisions.contains { $0.configVersion == versionA })
        // Every request sent after the reload answered used the new rules (and the rejected
        // file changed nothing).
        for request in sent where request.afterReload {
            #expect(versionByEvent[request.id] == versionB, "event \(request.id), sent after the reload, has \(versionByEvent[request.id] ?? "no decision")")
        }
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
        try #require(await eventually(timeout: .seconds(30)) { try await routes() == .array([.string("r2")]) }, "SIGHUP did not load the new routes")

        try "{ not json".write(toFile: config, atomically: true, encoding: .utf8)
        relay.signal(SIGHUP)
        try #require(await eventually(timeout: .seconds(30)) { relay.log.contains("routes reload rejected") }, "\(relay.log)")
        #expect(relay.log.contains("routes.json: (top level): not valid JSON"))
        #expect(try await routes() == .array([.string("r2")]))
        relay.signal(SIGTERM)
        #expect(await relay.waitForExit() == 0)
    }
}
