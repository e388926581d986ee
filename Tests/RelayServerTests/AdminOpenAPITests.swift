import Foundation
import RelayAdminAPI
import RelayCore
import RelayTesting
import Testing

/// Every admin route's real answers, checked against the OpenAPI document the relay serves: a
/// field the document does not describe, a missing one, or a wrong type fails the test.
@Suite struct AdminOpenAPITests {
    @Test(.timeLimit(.minutes(2)))
    func everyRouteAnswersAsTheDocumentSays() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let api = FakeFastSpringAPI()
        let apiPort = try await api.start()
        let routes = """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "status": "/status" } },
                       "fs": { "provider": "fastspring", "secret": "\(Fixtures.fastSpringSecret)",
                               "reconcile": { "url": "http://127.0.0.1:\(apiPort)", "username": "\(api.username)", "password": "\(api.password)", "every": "1h" } } },
          "destinations": { "ok": { "url": "http://127.0.0.1:\(port)/ok" },
                            "flaky": { "url": "http://127.0.0.1:\(port)/status/503", "retry": { "max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 20 },
                                       "ordering": { "key": "/id", "on_dead": "hold" } } },
          "routes": [ { "name": "all", "match": { "type": "order.*" }, "to": ["ok"] }, { "name": "failed", "match": { "status": "FAILED" }, "to": ["flaky"] } ] }
        """
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop(); await downstream.stop(); await api.stop() } }

        let served = try await TestHTTPClient.send(port: relay.adminPort, path: "/admin/openapi.json")
        #expect(served.status == 200 && served.header("content-type") == "application/json")
        let document = try JSONParser.parse(served.body)
        #expect(document["openapi"]?.stringValue == "3.1.0")
        let validator = SchemaValidator(document: document)
        var exercised: Set<String> = []

        /// Sends a request and checks its answer against the document's schema for that path,
        /// method and status; returns the parsed body.
        @discardableResult
        func check(_ method: String, _ path: String, as template: String, body: String? = nil, expect status: Int) async throws -> JSONValue? {
            let response = try await TestHTTPClient.send(
                port: relay.adminPort, method: method, path: path, headers: body == nil ? [] : [("Content-Type", "application/json")], body: Array((body ?? "").utf8)
            )
            #expect(response.status == status, "\(method) \(path): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
            exercised.insert(template)
            guard let operation = document["paths"]?[template]?[method.lowercased()] else {
                Issue.record("\(method) \(template) is not in the document")
                return nil
            }
            guard var answer = operation["responses"]?[String(response.status)] else {
                Issue.record("\(method) \(template): status \(response.status) is not in the document")
                return nil
            }
            if let reference = answer["$ref"]?.stringValue, let target = validator.resolve(reference) { answer = target }
            guard let schema = answer["content"]?["application/json"]?["schema"] else {
                Issue.record("\(method) \(template) \(response.status): no JSON schema")
                return nil
            }
            let json = try JSONParser.parse(response.body)
            let problems = validator.validate(json, schema)
            #expect(problems.isEmpty, "\(method) \(path) \(response.status): \(problems)")
            return json
        }

        // Events of every shape: delivered, dead after a retry, routed nowhere, not UTF-8.
        var ids: [String] = []
        for (index, body) in [#"{"id":"a","type":"order.paid","status":"OK"}"#, #"{"id":"b","type":"order.failed","status":"FAILED"}"#, #"{"id":"c","type":"refund","status":"OK"}"#].enumerated() {
            let response = try await relay.post("shop", body: Array(body.utf8))
            ids.append(try #require(try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue, "event \(index)"))
        }
        let binary = try await relay.post("shop", body: [0xFF, 0xFE, 0x7B], headers: [("Content-Type", "application/octet-stream")])
        #expect(binary.status == 200 || binary.status == 400)
        try #require(try await relay.storedDeliveries(atLeast: 4).count >= 4, "the deliveries did not finish")

        try await check("GET", "/healthz", as: "/healthz", expect: 200)
        try await check("GET", "/admin/journal", as: "/admin/journal", expect: 200)
        try await check("GET", "/admin/routes", as: "/admin/routes", expect: 200)
        let page = try await check("GET", "/admin/events?limit=2", as: "/admin/events", expect: 200)
        let cursor = try #require(page?["next_cursor"]?.stringValue)
        let last = try await check("GET", "/admin/events?limit=50&cursor=\(cursor)", as: "/admin/events", expect: 200)
        #expect(last?["next_cursor"] == .null)
        try await check("GET", "/admin/events?limit=0", as: "/admin/events", expect: 400)
        for id in ids {
            try await check("GET", "/admin/events/\(id)", as: "/admin/events/{id}", expect: 200)
        }
        let dead = try await check("GET", "/admin/events/\(ids[1])", as: "/admin/events/{id}", expect: 200)
        #expect(dead?["attempts"]?.arrayValue?.contains { $0["next_due"]?.stringValue != nil } == true, "a retry with its next due time")
        let unrouted = try await check("GET", "/admin/events/\(ids[2])", as: "/admin/events/{id}", expect: 200)
        #expect(unrouted?["delivery_state"] == .null)
        try await check("GET", "/admin/events/evt_nope", as: "/admin/events/{id}", expect: 404)
        try await check("GET", "/admin/deliveries?limit=1", as: "/admin/deliveries", expect: 200)
        try await check("GET", "/admin/deliveries?state=lost", as: "/admin/deliveries", expect: 400)
        try await check("POST", "/admin/deliveries/\(ids[0]):ok/retry", as: "/admin/deliveries/{id}/retry", expect: 202)
        try await check("POST", "/admin/deliveries/nocolon/retry", as: "/admin/deliveries/{id}/retry", expect: 400)
        // The colon may come percent-encoded (the console encodes path segments).
        try await check("POST", "/admin/deliveries/\(ids[0])%3Aok/retry", as: "/admin/deliveries/{id}/retry", expect: 202)
        try await check("POST", "/admin/deliveries/\(ids[0]):nowhere/retry", as: "/admin/deliveries/{id}/retry", expect: 404)
        try await check("POST", "/admin/replay", as: "/admin/replay", body: #"{"filter":{"type":"order.*"},"dry_run":true}"#, expect: 200)
        // A backtest: order.* now goes to "flaky" too, and FAILED ones no longer do.
        let backtest = try await check("POST", "/admin/replay", as: "/admin/replay", body: #"""
            {"filter":{"since":"1h"},"dry_run":true,"config":{"sources":{"shop":{"provider":"generic"}},
             "destinations":{"ok":{"url":"http://127.0.0.1:9/ok"},"flaky":{"url":"http://127.0.0.1:9/f"}},
             "routes":[{"name":"orders","match":{"type":"order.*"},"to":["ok","flaky"]}]}}
            """#, expect: 200)
        #expect(backtest?["backtest"]?["changed_events"]?.doubleValue == 1, "only order.paid changes: \(String(describing: backtest?["backtest"]))")
        let change = backtest?["backtest"]?["changes"]?.arrayValue?.first
        #expect(change?["id"]?.stringValue == ids[0] && change?["added"] == .array([.string("flaky")]) && change?["removed"] == .array([]))
        // The replay's own destination choice is not a change of the routes file.
        let chosen = try await check("POST", "/admin/replay", as: "/admin/replay", body: #"""
            {"filter":{"since":"1h"},"dry_run":true,"destinations":["ok"],"config":{"sources":{"shop":{"provider":"generic"}},
             "destinations":{"ok":{"url":"http://127.0.0.1:9/ok"},"flaky":{"url":"http://127.0.0.1:9/f"}},
             "routes":[{"name":"orders","match":{"type":"order.*"},"to":["ok","flaky"]}]}}
            """#, expect: 200)
        #expect(chosen?["backtest"]?["changed_events"]?.doubleValue == 1)
        try await check("POST", "/admin/replay", as: "/admin/replay", body: #"{"filter":{"since":"1h"},"dry_run":true,"routing":"original","config":{"sources":{}}}"#, expect: 400)
        let started = try await check("POST", "/admin/replay", as: "/admin/replay", body: #"{"filter":{"type":"order.*"},"destinations":["ok"]}"#, expect: 202)
        try await check("POST", "/admin/replay", as: "/admin/replay", body: #"{"filter":{}}"#, expect: 400)
        let replay = try #require(started?["replay_id"]?.stringValue)
        try await check("GET", "/admin/replays/\(replay)", as: "/admin/replays/{id}", expect: 200)
        try await check("GET", "/admin/replays/rpl_nope", as: "/admin/replays/{id}", expect: 404)
        let listed = try await check("GET", "/admin/destinations", as: "/admin/destinations", expect: 200)
        let flaky = listed?["destinations"]?.arrayValue?.first { $0["name"]?.stringValue == "flaky" }
        #expect(flaky?["dead"]?.doubleValue == 1 && flaky?["attempts_5m"]?.doubleValue == 2 && flaky?["success_rate_5m"]?.doubleValue == 0, "\(String(describing: flaky))")
        // The dead FAILED order holds its key ("b") at the ordered destination until skipped.
        #expect(flaky?["keys_blocked"]?.doubleValue == 1 && flaky?["held_keys"]?.arrayValue?.first?["key"]?.stringValue == "b", "\(String(describing: flaky))")
        let skipped = try await check("POST", "/admin/deliveries/\(ids[1]):flaky/skip", as: "/admin/deliveries/{id}/skip", expect: 200)
        #expect(skipped?["key"]?.stringValue == "b")
        try await check("POST", "/admin/deliveries/\(ids[1]):flaky/skip", as: "/admin/deliveries/{id}/skip", expect: 409)
        try await check("POST", "/admin/deliveries/nocolon/skip", as: "/admin/deliveries/{id}/skip", expect: 400)
        try await check("POST", "/admin/deliveries/evt_nope:flaky/skip", as: "/admin/deliveries/{id}/skip", expect: 404)
        let afterSkip = try await check("GET", "/admin/destinations", as: "/admin/destinations", expect: 200)
        #expect(afterSkip?["destinations"]?.arrayValue?.first { $0["name"]?.stringValue == "flaky" }?["keys_blocked"]?.doubleValue == 0)
        let paused = try await check("POST", "/admin/destinations/flaky/pause", as: "/admin/destinations/{name}/pause", expect: 200)
        #expect(paused?["state"]?.stringValue == "paused" && paused?["paused"]?.boolValue == true)
        try await check("POST", "/admin/destinations/nowhere/pause", as: "/admin/destinations/{name}/pause", expect: 404)
        let resumed = try await check("POST", "/admin/destinations/flaky/resume", as: "/admin/destinations/{name}/resume", expect: 200)
        #expect(resumed?["state"]?.stringValue == "healthy" && resumed?["paused"]?.boolValue == false)
        try await check("POST", "/admin/destinations/nowhere/resume", as: "/admin/destinations/{name}/resume", expect: 404)
        let activity = try await check("GET", "/admin/activity", as: "/admin/activity", expect: 200)
        let minutes = activity?["minutes"]?.arrayValue ?? []
        #expect(minutes.count == 60)
        #expect(minutes.reduce(0) { $0 + Int($1["events"]?.doubleValue ?? 0) } == ids.count + (binary.status == 200 ? 1 : 0))
        #expect(minutes.reduce(0) { $0 + Int($1["dead"]?.doubleValue ?? 0) } == 1)
        // A FastSpring batch with a good event, one with no type and one that is no object.
        let batch = Array(#"{"events":[{"id":"fs-ok","type":"order.completed"},{"id":"fs-no-type"},7]}"#.utf8)
        let partial = try await relay.post("fs", body: batch, headers: [("X-FS-Signature", Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: batch))])
        #expect(partial.status == 202 && partial.text == "fs-ok\n")
        let rejections = try await check("GET", "/admin/rejections?source=fs", as: "/admin/rejections", expect: 200)
        #expect(rejections?["rejections"]?.arrayValue?.map { $0["event_id"] ?? .null } == [.null, .string("fs-no-type")])
        try await check("GET", "/admin/rejections?limit=x", as: "/admin/rejections", expect: 400)
        api.add(id: "fs-missed")
        let reconciled = try await check("POST", "/admin/reconcile", as: "/admin/reconcile", body: #"{"source":"fs","since":"1d"}"#, expect: 200)
        #expect(reconciled?["stored_ids"]?.arrayValue == [.string("fs-missed")] && reconciled?["relay_had"]?.doubleValue == 0)
        let dry = try await check("POST", "/admin/reconcile", as: "/admin/reconcile", body: #"{"source":"fs","dry_run":true}"#, expect: 200)
        #expect(dry?["relay_had"] == .null && dry?["provider_has"]?.doubleValue == 0)
        try await check("POST", "/admin/reconcile", as: "/admin/reconcile", body: #"{"source":"shop"}"#, expect: 400)
        try await check("POST", "/admin/reconcile", as: "/admin/reconcile", body: #"{"source":"nowhere"}"#, expect: 404)
        api.failure = .unavailable
        try await check("POST", "/admin/reconcile", as: "/admin/reconcile", body: #"{"source":"fs"}"#, expect: 502)
        try await check("POST", "/admin/routes/reload", as: "/admin/routes/reload", expect: 200)
        try "{ not json".write(toFile: relay.configPath, atomically: true, encoding: .utf8)
        try await check("POST", "/admin/routes/reload", as: "/admin/routes/reload", expect: 422)
        try await check("GET", "/admin/openapi.json", as: "/admin/openapi.json", expect: 200)
        let metrics = try await TestHTTPClient.send(port: relay.adminPort, path: "/metrics")
        #expect(metrics.status == 200 && metrics.header("content-type")?.hasPrefix("text/plain") == true)
        exercised.insert("/metrics")

        let documented = Set((document["paths"]?.objectValue ?? []).map(\.key))
        #expect(exercised == documented, "documented but not exercised: \(documented.subtracting(exercised)); exercised but not documented: \(exercised.subtracting(documented))")
        // The typed bodies decode what the server sends (the CLI and console read them so).
        let typed = try JSONDecoder().decode(EventPageBody.self, from: Data(try await TestHTTPClient.send(port: relay.adminPort, path: "/admin/events").body))
        #expect(typed.events.count >= 3 && typed.events.allSatisfy { !$0.id.isEmpty })
        let detail = try JSONDecoder().decode(EventDetailBody.self, from: Data(try await TestHTTPClient.send(port: relay.adminPort, path: "/admin/events/\(ids[1])").body))
        #expect(detail.summary.id == ids[1] && detail.routing?.destinations == ["ok", "flaky"])
        #expect(detail.attempts.filter { $0.destination == "flaky" }.map(\.outcome) == ["retry", "dead"])
        await relay.stop()
        await downstream.stop()
    }

    /// The validator itself catches what it must (so a pass above means something).
    @Test func theValidatorRejectsWhatTheSchemaForbids() throws {
        let document = try JSONParser.parse(Array(AdminOpenAPI.document.utf8))
        let validator = SchemaValidator(document: document)
        let schema = JSONValue.object([("$ref", .string("#/components/schemas/EventPage"))])
        let good = try JSONParser.parse(Array(#"{"events":[],"next_cursor":null}"#.utf8))
        #expect(validator.validate(good, schema).isEmpty)
        for bad in [#"{"events":[]}"#, #"{"events":[],"next_cursor":3}"#, #"{"events":[],"next_cursor":null,"extra":1}"#, #"{"events":[{"id":"x"}],"next_cursor":null}"#] {
            #expect(!validator.validate(try JSONParser.parse(Array(bad.utf8)), schema).isEmpty, "\(bad)")
        }
    }
}
