import RelayCore
import RelayTesting
import Testing

func event(provider: String = "fastspring", source: String = "fs", type: String = "order.completed", status: String = "COMPLETED", products: [String] = [], body: String = "{}") -> Event {
    Event(id: "evt_test", source: source, provider: provider, type: type, status: status, products: products, receivedAt: Timestamp(milliseconds: 0), body: Array(body.utf8))
}

func table(_ routes: String, destinations: [String] = ["a", "b", "c"]) throws -> RoutingTable {
    let dests = destinations.map { "\"\($0)\": {\"url\": \"http://127.0.0.1:9/\($0)\"}" }.joined(separator: ",")
    let json = "{\"sources\": {\"fs\": {\"provider\": \"generic\"}, \"runa\": {\"provider\": \"generic\"}}, \"destinations\": {\(dests)}, \"routes\": \(routes)}"
    return try RelayConfig.parse(Array(json.utf8), file: "routes.json", environment: [:]).routing
}

@Suite struct GlobTests {
    @Test(arguments: [
        ("order.*", "order.completed", true), ("order.*", "order.", true), ("order.*", "orders.x", false),
        ("*.failed", "subscription.charge.failed", true), ("*.failed", "failed", false), ("*", "", true),
        ("cloud-?", "cloud-s", true), ("cloud-?", "cloud-xl", false), ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false),
        ("COMPLETED", "COMPLETED", true), ("COMPLETED", "completed", false), ("a\\*", "a*", true), ("a\\*", "ab", false),
        ("*a*a*a*a*b", String(repeating: "a", count: 30), false),
    ])
    func matching(pattern: String, text: String, expected: Bool) throws {
        #expect(try Glob(pattern).matches(text) == expected)
    }

    @Test func badGlobsAreRejected() {
        for pattern in ["", "order.[ab]", "x{y}", "trailing\\"] {
            #expect(throws: GlobError.self) { try Glob(pattern) }
        }
    }
}

@Suite struct MatcherTests {
    @Test func emptyMatchMatchesAllAndUnroutedIsRecorded() throws {
        let all = try table(#"[{"name": "all", "match": {}, "to": ["a"]}, {"name": "none-given", "to": ["b"]}]"#)
        #expect(all.decide(event()).destinations == ["a", "b"])
        let narrow = try table(#"[{"name": "runa-only", "match": {"provider": "runa"}, "to": ["a"]}]"#)
        let decision = narrow.decide(event())
        #expect(decision.isUnrouted)
        #expect(decision.routes.isEmpty)
        #expect(decision.configVersion == narrow.version)
    }

    @Test func fieldsAreANDedAndArraysAreORed() throws {
        let t = try table(#"""
        [{"name": "r", "match": {"provider": ["runa", "fastspring"], "type": "order.*", "status": ["FAILED", "CANCELED"]}, "to": ["a"]}]
        """#)
        #expect(t.decide(event(status: "COMPLETED")).isUnrouted)
        #expect(t.decide(event(status: "FAILED")).destinations == ["a"])
        #expect(t.decide(event(provider: "runa", status: "CANCELED")).destinations == ["a"])
        #expect(t.decide(event(provider: "generic", status: "FAILED")).isUnrouted)
        #expect(t.decide(event(type: "product.update", status: "FAILED")).isUnrouted)
    }

    @Test func productMatchesIfAnyProductMatches() throws {
        let t = try table(#"[{"name": "storage", "match": {"product": "cloud-*"}, "to": ["a"]}]"#)
        #expect(t.decide(event(products: ["team-5", "cloud-s"])).destinations == ["a"])
        #expect(t.decide(event(products: ["team-5"])).isUnrouted)
        #expect(t.decide(event(products: [])).isUnrouted)
    }

    @Test func fanOutDeduplicatesDestinations() throws {
        let t = try table(#"""
        [{"name": "one", "match": {"type": "order.*"}, "to": ["a", "b"]},
         {"name": "two", "match": {"status": "COMPLETED"}, "to": ["b", "c"]},
         {"name": "three", "match": {"status": "FAILED"}, "to": ["c"]}]
        """#)
        let decision = t.decide(event())
        #expect(decision.routes == ["one", "two"])
        #expect(decision.destinations == ["a", "b", "c"])
    }

    @Test(arguments: [
        (#"{"path": "/data/total", "op": "gt", "value": 100}"#, true), (#"{"path": "/data/total", "op": "gt", "value": 150}"#, false),
        (#"{"path": "/data/total", "op": "gte", "value": 150}"#, true), (#"{"path": "/data/total", "op": "lt", "value": 150}"#, false),
        (#"{"path": "/data/total", "op": "lte", "value": 150}"#, true), (#"{"path": "/data/total", "op": "eq", "value": 150}"#, true),
        (#"{"path": "/data/total", "op": "eq", "value": "150"}"#, false), (#"{"path": "/data/total", "op": "ne", "value": 150}"#, false),
        (#"{"path": "/data/currency", "op": "ne", "value": "USD"}"#, true), (#"{"path": "/data/currency", "op": "in", "value": ["USD", "EUR"]}"#, true),
        (#"{"path": "/data/currency", "op": "in", "value": ["USD"]}"#, false), (#"{"path": "/data/coupon", "op": "exists"}"#, false),
        (#"{"path": "/data/items/*/product", "op": "eq", "value": "cloud-m"}"#, true), (#"{"path": "/data/items/*/quantity", "op": "gt", "value": 4}"#, true),
        (#"{"path": "/data/items/*/quantity", "op": "gt", "value": 5}"#, false), (#"{"path": "/data/items/1/product", "op": "eq", "value": "cloud-m"}"#, true),
        (#"{"path": "/data/currency", "op": "gt", "value": "DKK"}"#, true), (#"{"path": "/data/currency", "op": "gt", "value": 1}"#, false),
        (#"{"path": "/data/items", "op": "exists"}"#, true),
    ])
    func whereOperators(condition: String, expected: Bool) throws {
        let t = try table(#"[{"name": "w", "match": {"where": ["# + condition + #"]}, "to": ["a"]}]"#)
        let body = #"{"id":"e","data":{"total":150,"currency":"EUR","items":[{"product":"team","quantity":1},{"product":"cloud-m","quantity":5}]}}"#
        #expect(t.decide(event(body: body)).isUnrouted == !expected)
    }

    @Test func whereOnANonJSONPayloadDoesNotMatch() throws {
        let t = try table(#"[{"name": "w", "match": {"where": [{"path": "/a", "op": "exists"}]}, "to": ["a"]}]"#)
        #expect(t.decide(event(body: "not json")).isUnrouted)
    }

    @Test func routingDecisionRoundTrips() throws {
        let decision = RoutingDecision(eventID: "evt_1", configVersion: "abc123", routes: ["r1", "r2"], destinations: ["a"])
        #expect(try RoutingDecision(decoding: decision.encoded()) == decision)
    }

    @Test func fastSpringBatchThroughTypicalRoutes() throws {
        let t = try table(#"""
        [{"name": "all-orders", "match": {"type": ["order.*"]}, "to": ["a"]},
         {"name": "failed-to-alerts", "match": {"status": "FAILED"}, "to": ["b"]}]
        """#)
        let vector = Fixtures.fastSpringVectors[1]
        let events = try ProviderAdapters.normalize(source: fastSpringSource(), headers: ["X-FS-Signature": vector.signature], body: try Fixtures.bytes(vector.file), now: Timestamp(seconds: 0))
        let decisions = events.map { t.decide(Event(id: "e", source: "fs", provider: "fastspring", type: $0.type, status: $0.status, products: $0.products, receivedAt: Timestamp(milliseconds: 0), body: $0.body)) }
        #expect(decisions.map { $0.routes.contains("all-orders") } == [true, true, true])
        #expect(decisions.map { $0.routes.contains("failed-to-alerts") } == [false, false, true])
    }
}

@Suite struct RouteValidationTests {
    @Test func everyErrorIsReportedWithItsPath() {
        let issues = configIssues(#"""
        {
          "sources": { "shop": { "provider": "generic" } },
          "destinations": {
            "orders": { "url": "http://127.0.0.1:9001/hooks", "timeout_ms": -5, "max_in_flight": 0,
                        "retry": { "max_attempts": 0, "initial_backoff_ms": 5000, "max_backoff_ms": 1000, "max_age": "3 days" },
                        "headers": { "Authorization": "env:NO_TOKEN" }, "colour": "red" },
            "alerts": { "url": "ftp://example.com/x", "body_template": "{{#unclosed}}" },
            "nohost": { "url": "not a url" },
            "signed": { "url": "https://example.com/in", "signing_secret": "plain-text" }
          },
          "routes": [
            { "name": "one", "match": { "type": "order.[x]", "status": [] }, "to": ["orders"] },
            { "name": "two", "match": { "status": "FAILED" }, "to": ["alertz"] },
            { "name": "one", "match": { "source": "shopp", "provider": "paypal", "colour": 1 }, "to": [] },
            { "name": "four", "where": [], "match": { "where": [{ "path": "total", "op": "bigger", "value": 1 }, { "path": "/x", "op": "in", "value": 1 }, { "path": "/x", "op": "exists", "value": 1 }] }, "to": ["orders", "orders"] },
            { "match": {}, "to": "orders" }
          ]
        }
        """#)
        let expected = [
            "routes.json: destinations.orders.colour: unknown key (allowed: body_template, connect_timeout_ms, enrich, headers, max_in_flight, ordering, rate_per_s, retry, signing_secret, timeout_ms, url)",
            "routes.json: destinations.orders.timeout_ms: must be at least 1, not -5",
            "routes.json: destinations.orders.max_in_flight: must be at least 1, not 0",
            "routes.json: destinations.orders.headers.Authorization: environment variable NO_TOKEN is not set",
            "routes.json: destinations.orders.retry.max_attempts: must be at least 1, not 0",
            "routes.json: destinations.orders.retry.max_age: invalid duration \"3 days\" (use a number with ms, s, m, h or d, e.g. \"72h\")",
            "routes.json: destinations.orders.retry.max_backoff_ms: must not be less than initial_backoff_ms (5000)",
            "routes.json: destinations.alerts.url: must be an http or https URL, not ftp",
            "routes.json: destinations.nohost.url: \"not a url\" is not a valid URL",
            "routes.json: destinations.signed.signing_secret: the secret from inline is not a Standard Webhooks secret (whsec_ followed by base64)",
            "routes.json: routes[0].match.type: bad glob \"order.[x]\": '[' is not supported in globs (only * and ? are wildcards; escape it as \\[)",
            "routes.json: routes[0].match.status: must not be an empty array (it would match nothing)",
            "routes.json: routes[1].to[0]: unknown destination \"alertz\" (known: alerts, nohost, orders, signed)",
            "routes.json: routes[2].match.colour: unknown key (allowed: product, provider, source, status, type, where)",
            "routes.json: routes[2].name: duplicate route name \"one\"",
            "routes.json: routes[2].match.provider: unknown provider \"paypal\" (known: fastspring, generic, runa)",
            "routes.json: routes[2].match.source: unknown source \"shopp\" (known: shop)",
            "routes.json: routes[2].to: must name at least one destination",
            "routes.json: routes[3].where: unknown key (allowed: match, name, to)",
            "routes.json: routes[3].where: belongs inside match (\"match\": {\"where\": [...]})",
            "routes.json: routes[3].match.where[0].path: must be a JSON Pointer starting with '/', not \"total\"",
            "routes.json: routes[3].match.where[0].op: unknown operator \"bigger\" (known: eq, ne, gt, gte, lt, lte, exists, in)",
            "routes.json: routes[3].match.where[1].value: must be an array for in",
            "routes.json: routes[3].match.where[2].value: is not used with exists",
            "routes.json: routes[3].to[1]: destination \"orders\" is listed twice",
            "routes.json: routes[4].name: is required",
            "routes.json: routes[4].to: must be an array of destination names, not a string",
        ]
        let missing = expected.filter { !issues.contains($0) }
        #expect(missing.isEmpty, "missing:\n\(missing.joined(separator: "\n"))\ngot:\n\(issues.joined(separator: "\n"))")
        let unexpected = issues.filter { !expected.contains($0) && !$0.contains("body_template") }
        #expect(unexpected.isEmpty, "unexpected:\n\(unexpected.joined(separator: "\n"))")
        #expect(issues.contains("routes.json: destinations.alerts.body_template: is not a valid Mustache template: expectedSectionEnd at column 14"))
    }

    @Test func repositoryRoutesFileIsValid() throws {
        let env = ["RUNA_WEBHOOK_SECRET": Fixtures.runaSecret, "FASTSPRING_WEBHOOK_SECRET": "x", "SHOP_SECRET": "y", "ORDERS_TOKEN": "Bearer t",
                   "ORDERS_SIGNING_SECRET": "whsec_" + Signatures.base64Encode(Array("signing-key".utf8))]
        let config = try RelayConfig.load(path: Fixtures.directory + "/../../routes.json", environment: env)
        #expect(config.routing.routes.map(\.name) == ["all-orders", "failed-to-alerts", "storage"])
        #expect(config.destinations["orders-service"]?.retry.maxAgeMillis == Int64(72 * 3_600_000))
        #expect(config.destinations["alerts"]?.bodyTemplate != nil)
        #expect(config.version.count == 12)
    }
}
