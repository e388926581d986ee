import Foundation
import Logging
import RelayCore
import RelayServer
import RelayTesting
import Synchronization
import Testing

/// A clock tests move by hand (events get the receive times the test chooses).
private func ids(_ json: JSONValue?) -> [String] {
    (json?["events"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
}

@Suite struct AdminEventsTests {
    static let token = "t0ken-for-tests"

    @Test func everyAdminRequestNeedsTheRightTokenWhenOneIsSet() async throws {
        let relay = try await LiveRelay(routes: #"{ "sources": { "shop": { "provider": "generic" } } }"#, adminToken: Self.token)
        defer { Task { await relay.stop() } }
        for path in ["/admin/events", "/admin/journal", "/healthz", "/admin/events/evt_x"] {
            #expect(try await relay.admin(path).status == 401, "\(path) without a token")
            #expect(try await relay.admin(path, token: "wrong").status == 401, "\(path) with a wrong token")
            #expect(try await relay.admin(path, token: Self.token + "x").status == 401, "\(path) with a longer token")
        }
        let denied = try await relay.admin("/admin/events", token: "wrong")
        #expect(denied.json?["error"]?.stringValue?.contains(Self.token) == false, "the answer never echoes the token")
        #expect(try await relay.admin("/admin/events", token: Self.token).status == 200)
        #expect(try await relay.admin("/healthz", token: Self.token).status == 200)
        await relay.stop()
    }

    @Test func withoutATokenTheAdminListenerStaysOnLoopback() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = try RelayConfig.parse(Array(#"{ "sources": { "shop": { "provider": "generic" } } }"#.utf8), file: "routes.json", environment: [:])
        let open = RelayServerConfiguration(configPath: dir.path + "/routes.json", dataDirectory: dir.path + "/data", adminListen: .init(host: "0.0.0.0", port: 0))
        #expect(throws: ServerConfigurationError.self) { _ = try RelayServer(configuration: open, config: config, logger: makeTestLogger()) }
        var withToken = open
        withToken.adminToken = "x"
        #expect(throws: Never.self) { try withToken.validate() }
        #expect(throws: Never.self) { try RelayServerConfiguration(configPath: "", dataDirectory: "", adminListen: .init(host: "127.0.0.1", port: 0)).validate() }
    }

    static func routes(up: Int, dead: Int, later: Int) -> String {
        """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "status": "/status", "product": "/items/*/sku" } },
                       "store": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "status": "/status" } } },
          "destinations": {
            "up": { "url": "http://127.0.0.1:\(up)/up" },
            "dead": { "url": "http://127.0.0.1:\(dead)/dead", "retry": { "max_attempts": 1 } },
            "later": { "url": "http://127.0.0.1:\(later)/later", "retry": { "max_attempts": 5, "initial_backoff_ms": 600000, "max_backoff_ms": 600000 } } },
          "routes": [ { "name": "completed", "match": { "status": "COMPLETED" }, "to": ["up"] },
                      { "name": "failed", "match": { "status": "FAILED" }, "to": ["up", "dead"] },
                      { "name": "refunds", "match": { "type": "refund.*" }, "to": ["later"] } ] }
        """
    }

    @Test func everyFilterSelectsExactlyItsEvents() async throws {
        let downstream = TestDownstream()
        let up = try await downstream.start()
        let clock = SettableClock(Timestamp(seconds: 1_800_000_000))
        let relay = try await LiveRelay(routes: Self.routes(up: up, dead: unusedLoopbackPort(), later: unusedLoopbackPort()), clock: clock)
        defer { Task { await relay.stop(); await downstream.stop() } }
        // name: (source, body, receive time offset in seconds)
        let events: [(String, String, String, Int64)] = [
            ("a", "shop", #"{"id":"a","type":"order.completed","status":"COMPLETED","items":[{"sku":"cloud-basic"}]}"#, 0),
            ("b", "shop", #"{"id":"b","type":"order.failed","status":"FAILED","items":[{"sku":"desk-pro"},{"sku":"cloud-pro"}]}"#, 60),
            ("c", "store", #"{"id":"c","type":"refund.created","status":"OPEN"}"#, 120),
            ("d", "store", #"{"id":"d","type":"ping","status":"OK"}"#, 180),
        ]
        var relayID: [String: String] = [:]
        for (name, source, body, offset) in events {
            clock.set(Timestamp(seconds: 1_800_000_000 + offset))
            let response = try await relay.post(source, body: Array(body.utf8))
            #expect(response.status == 200)
            relayID[name] = try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue
        }
        // Let a and b reach "up", b's copy to "dead" die; c's delivery to "later" waits 10 minutes.
        #expect(await downstream.wait { $0.count == 2 })
        func expectation(_ query: String, _ names: [String], _ comment: Comment? = nil) async throws {
            let answer = try await relay.admin("/admin/events?" + query)
            #expect(answer.status == 200, "\(query)")
            #expect(ids(answer.json) == names.map { relayID[$0] ?? "?" }, "\(query)")
        }
        // Newest first.
        try await expectation("", ["d", "c", "b", "a"])
        try await expectation("source=shop", ["b", "a"])
        try await expectation("source=store&source=shop", ["d", "c", "b", "a"])
        try await expectation("provider=generic", ["d", "c", "b", "a"])
        try await expectation("provider=runa", [])
        try await expectation("type=order.*", ["b", "a"])
        try await expectation("type=refund.created,ping", ["d", "c"])
        try await expectation("status=FAILED", ["b"])
        try await expectation("product=cloud-*", ["b", "a"])
        try await expectation("product=desk-*", ["b"])
        try await expectation("since=2027-01-15T08:01:00Z", ["d", "c", "b"])
        try await expectation("until=2027-01-15T08:02:00Z", ["b", "a"])
        try await expectation("since=2027-01-15T08:01:00Z&until=2027-01-15T08:03:00Z", ["c", "b"])
        try await expectation("id=\(relayID["c"] ?? "")", ["c"])
        // Eventually b's "dead" delivery dies and a/b's "up" ones succeed.
        let settled = try await eventually(timeout: .seconds(30)) {
            ids(try await relay.admin("/admin/events?delivery_state=dead").json) == [relayID["b"] ?? ""]
        }
        try #require(settled, "b's delivery to the dead destination did not die within 30 s")
        try await expectation("delivery_state=succeeded", ["a"])
        try await expectation("delivery_state=pending", ["c"])
        try await expectation("delivery_state=dead&source=store", [])
        let b = try await relay.admin("/admin/events?status=FAILED").json?["events"]?.arrayValue?.first
        #expect(b?["delivery_state"]?.stringValue == "dead")
        #expect(b?["deliveries"]?.arrayValue?.count == 2)

        for bad in ["since=yesterday", "delivery_state=lost", "product=cloud-[", "limit=0", "limit=abc", "cursor=xyz"] {
            let answer = try await relay.admin("/admin/events?" + bad)
            #expect(answer.status == 400, "\(bad)")
            #expect(answer.json?["error"]?.stringValue?.isEmpty == false, "\(bad)")
        }
        await relay.stop()
        await downstream.stop()
    }

    @Test func pagesStayStableWhileEventsArrive() async throws {
        let relay = try await LiveRelay(routes: #"{ "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } } }"#)
        defer { Task { await relay.stop() } }
        var stored: [String] = []
        for i in 0..<30 {
            let response = try await relay.post("shop", body: Array("{\"id\":\"old-\(i)\"}".utf8))
            stored += try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        var seen: [String] = ids(try await relay.admin("/admin/events?limit=7").json)
        var cursor = try await relay.admin("/admin/events?limit=7").json?["next_cursor"]?.stringValue
        #expect(seen == Array(stored.reversed().prefix(7)))
        // New events arrive while the pages are read.
        let writer = Task {
            for i in 0..<20 { _ = try await relay.post("shop", body: Array("{\"id\":\"new-\(i)\"}".utf8)) }
        }
        var pages = 1
        while let next = cursor, pages < 20 {
            let page = try await relay.admin("/admin/events?limit=7&cursor=\(next)").json
            seen += ids(page)
            cursor = page?["next_cursor"]?.stringValue
            pages += 1
        }
        try await writer.value
        #expect(seen == stored.reversed(), "every older event exactly once, newest first, none of the new ones")
        #expect(pages == 5)
        #expect(ids(try await relay.admin("/admin/events?limit=100").json).count == 50)
        await relay.stop()
    }

    @Test func detailHasBodyRoutingAndEveryAttempt() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" } } },
          "destinations": { "flaky": { "url": "http://127.0.0.1:\(port)/flaky/2", "retry": { "initial_backoff_ms": 10, "max_backoff_ms": 20 } } },
          "routes": [ { "name": "all", "to": ["flaky"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop(); await downstream.stop() } }
        let body = #"{"id":"x1","note":"héllo"}"#
        let response = try await relay.post("shop", body: Array(body.utf8), headers: [("Content-Type", "application/json"), ("X-Extra", "kept?")])
        let id = try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
        #expect(await downstream.wait { $0.count == 3 })
        var detail: JSONValue?
        try #require(await eventually(timeout: .seconds(30)) {
            detail = try await relay.admin("/admin/events/\(id)").json
            return detail?["delivery_state"]?.stringValue == "succeeded"
        }, "the delivery did not succeed within 30 s: \(String(describing: detail))")
        #expect(detail?["id"]?.stringValue == id)
        #expect(detail?["body_encoding"]?.stringValue == "utf8")
        #expect(detail?["body"]?.stringValue == body)
        #expect(detail?["routing"]?["routes"]?.arrayValue?.compactMap(\.stringValue) == ["all"])
        #expect(detail?["routing"]?["destinations"]?.arrayValue?.compactMap(\.stringValue) == ["flaky"])
        let attempts = detail?["attempts"]?.arrayValue ?? []
        #expect(attempts.compactMap { $0["outcome"]?.stringValue } == ["retry", "retry", "succeeded"])
        #expect(attempts.compactMap { $0["status"]?.doubleValue } == [503, 503, 204])
        #expect(attempts.compactMap { $0["attempt"]?.doubleValue } == [1, 2, 3])
        #expect(attempts.first?["next_due"]?.stringValue != nil)
        #expect(try await relay.admin("/admin/events/evt_01M82RV60BNSTP62XRFQPWBT3D").status == 404)
        #expect(try await relay.admin("/admin/events/not-an-id").status == 404)
        await relay.stop()
        await downstream.stop()
    }

    @Test func aBodyThatIsNotUTF8IsBase64() async throws {
        let relay = try await LiveRelay(routes: #"{ "sources": { "raw": { "provider": "generic", "signature": { "scheme": "none" } } } }"#)
        defer { Task { await relay.stop() } }
        let body: [UInt8] = Array(#"{"v":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8)
        let response = try await relay.post("raw", body: body)
        #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        let id = try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue)
        let detail = try await relay.admin("/admin/events/\(id)").json
        #expect(detail?["body_encoding"]?.stringValue == "base64")
        #expect(detail?["body"]?.stringValue.flatMap { Signatures.base64Decode($0) } == body)
        await relay.stop()
    }
}

/// `relay events list|show` against the real binary, with the token from the environment.
@Suite struct EventsCLITests {
    @Test(.timeLimit(.minutes(2)))
    func listAndShowWithTablesJSONAndClearErrors() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("routes.json", #"{ "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "status": "/status" } } } }"#)
        let token = "cli-t0ken"
        let process = try RelayProcess(
            arguments: ["serve", "--config", dir.path + "/routes.json", "--data", dir.path + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            logPath: dir.path + "/relay.log", environment: ["RELAY_ADMIN_TOKEN": token]
        )
        let ingest = try await process.waitForPort(message: "ingest listening")
        let adminPort = try await process.waitForPort(message: "admin listening")
        var stored: [String] = []
        for (index, status) in ["COMPLETED", "FAILED", "COMPLETED"].enumerated() {
            let body = "{\"id\":\"cli-\(index)\",\"type\":\"order.x\",\"status\":\"\(status)\"}"
            let response = try await TestHTTPClient.send(port: ingest, method: "POST", path: "/webhooks/shop", body: Array(body.utf8))
            stored += try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        let admin = ["--admin", "http://127.0.0.1:\(adminPort)"]
        let env = ["RELAY_ADMIN_TOKEN": token]

        let json = try await runRelay(["events", "list", "--json", "--status", "FAILED"] + admin, environment: env)
        #expect(json.status == 0, "\(json.err)")
        #expect(ids(try JSONParser.parse(Array(json.out.utf8))) == [stored[1]])

        let table = try await runRelay(["events", "list", "--limit", "2"] + admin, environment: env)
        #expect(table.status == 0, "\(table.err)")
        let lines = table.out.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("ID") == true)
        #expect(lines.count == 4, "header, two events, footer: \(table.out)")
        #expect(lines[1].hasPrefix(stored[2]) && lines[2].hasPrefix(stored[1]))
        #expect(lines.last?.contains("next page: --cursor") == true)

        let show = try await runRelay(["events", "show", stored[0]] + admin, environment: env)
        #expect(show.status == 0, "\(show.err)")
        #expect(show.out.contains("provider_event_id  cli-0"))
        #expect(show.out.contains("{\"id\":\"cli-0\""))

        // Failures: one line on stderr, non-zero exit.
        let failures: [([String], [String: String], String)] = [
            (["events", "list"] + admin, [:], "401"),
            (["events", "list"] + admin, ["RELAY_ADMIN_TOKEN": "wrong"], "401"),
            (["events", "list", "--since", "yesterday"] + admin, env, "--since"),
            (["events", "list", "--delivery-state", "lost"] + admin, env, "--delivery-state"),
            (["events", "show", "evt_01M82RV60BNSTP62XRFQPWBT3D"] + admin, env, "404"),
            (["events", "list", "--admin", "http://127.0.0.1:\(unusedLoopbackPort())"], env, "cannot reach the relay"),
        ]
        for (arguments, environment, expected) in failures {
            let result = try await runRelay(arguments, environment: environment)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.out.isEmpty, "\(arguments)")
            let errorLines = result.err.split(separator: "\n")
            #expect(errorLines.count == 1, "\(arguments): \(result.err)")
            #expect(result.err.contains(expected), "\(arguments): \(result.err)")
            #expect(!result.err.contains(token), "never prints the token")
        }
        process.signal(SIGTERM)
        #expect(await process.waitForExit() == 0)
    }
}
