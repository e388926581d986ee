import RelayCore
import Testing

func configIssues(_ json: String, environment: [String: String] = [:]) -> [String] {
    do {
        _ = try RelayConfig.parse(Array(json.utf8), file: "routes.json", environment: environment)
        return []
    } catch let error as ConfigError {
        return error.issues.map(\.description)
    } catch {
        return ["unexpected \(error)"]
    }
}

@Suite struct ConfigTests {
    @Test func validProvidersLoad() throws {
        let config = try RelayConfig.parse(Array("""
        { "sources": {
            "runa": { "provider": "runa", "secret": "env:R", "timestamp_tolerance": "10m" },
            "fs": { "provider": "fastspring", "secret": ["env:F1", "env:F2"], "max_body_bytes": 2048 },
            "shop": { "provider": "generic", "signature": { "scheme": "hmac-sha256", "header": "X-Shop-Hmac", "encoding": "base64" },
                      "fields": { "id": "/id", "product": "/line_items/*/sku" }, "secret": "inline-secret" }
        } }
        """.utf8), file: "routes.json", environment: ["R": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "F1": "a", "F2": "b"])
        #expect(config.sources["runa"]?.signature.toleranceMillis == 600_000)
        #expect(config.sources["fs"]?.secrets.map(\.value) == ["a", "b"])
        #expect(config.sources["fs"]?.maxBodyBytes == 2048)
        #expect(config.sources["shop"]?.fields.product == "/line_items/*/sku")
        // Secrets never print their value.
        #expect(config.sources["fs"]!.secrets[0].description == "<secret from env:F1>")
    }

    @Test func everyProblemIsReportedWithItsPath() {
        let issues = configIssues("""
        { "sources": {
            "runa": { "provider": "runa", "secret": "env:MISSING_RUNA" },
            "fs": { "provider": "fastspring", "secret": ["env:OK", "env:GONE"], "max_body_bytes": -1 },
            "shop": { "provider": "generic", "signature": { "scheme": "md5" }, "secret": "x", "extra": 1 },
            "bad": { "provider": "paypal" },
            "gh": { "provider": "generic", "signature": { "scheme": "hmac-sha256" }, "secret": "s", "fields": { "id": "id" } }
          },
          "sourcez": {}
        }
        """, environment: ["OK": "v"])
        let expected = [
            "routes.json: sourcez: unknown key (allowed: destinations, routes, sources)",
            "routes.json: sources.runa.secret: environment variable MISSING_RUNA is not set",
            "routes.json: sources.fs.secret[1]: environment variable GONE is not set",
            "routes.json: sources.fs.max_body_bytes: must be at least 1, not -1",
            "routes.json: sources.shop.extra: unknown key (allowed: fields, max_body_bytes, provider, reconcile, secret, signature, timestamp_tolerance)",
            "routes.json: sources.shop.signature.scheme: unknown scheme \"md5\" (known: hmac-sha256, standard-webhooks, stripe, none)",
            "routes.json: sources.bad.provider: unknown provider \"paypal\" (known: runa, fastspring, generic)",
            "routes.json: sources.gh.signature.header: is required for hmac-sha256",
            "routes.json: sources.gh.fields.id: must be a JSON Pointer starting with '/', not \"id\"",
        ]
        for line in expected { #expect(issues.contains(line), "missing: \(line)\ngot:\n\(issues.joined(separator: "\n"))") }
        #expect(issues.count == expected.count, "got:\n\(issues.joined(separator: "\n"))")
    }

    @Test func aRateLimitIsAPositiveNumber() throws {
        let config = try RelayConfig.parse(Array("""
        { "sources": { "s": { "provider": "generic" } }, "destinations": { "d": { "url": "http://127.0.0.1:9/d", "rate_per_s": 2.5, "max_in_flight": 3 } } }
        """.utf8), file: "routes.json", environment: [:])
        #expect(config.destinations["d"]?.ratePerSecond == 2.5)
        for (value, shown) in [("0", "0"), ("-3", "-3"), ("1e-20", "1e-20"), ("\"fast\"", "\"fast\""), ("null", "null")] {
            let issues = configIssues(#"{ "sources": { "s": { "provider": "generic" } }, "destinations": { "d": { "url": "http://127.0.0.1:9/d", "rate_per_s": \#(value) } } }"#)
            #expect(issues == ["routes.json: destinations.d.rate_per_s: must be a number of attempts per second from 0.001 to 1000000, not \(shown)"], "\(issues)")
        }
    }

    @Test func aReconcileBlockIsCheckedWithTheUsualPaths() throws {
        let good = #"{ "sources": { "fs": { "provider": "fastspring", "secret": "s", "reconcile": { "url": "https://api.fastspring.com/", "username": "env:U", "password": "env:P", "every": "5m", "lookback": "7d" } } } }"#
        let config = try RelayConfig.parse(Array(good.utf8), file: "routes.json", environment: ["U": "user", "P": "pass"])
        let reconcile = try #require(config.sources["fs"]?.reconcile)
        #expect(reconcile.url == "https://api.fastspring.com" && reconcile.everyMillis == 300_000 && reconcile.lookbackMillis == 7 * 86_400_000)
        #expect(reconcile.credentials == .basic(username: Secret(value: "user", origin: "env:U"), password: Secret(value: "pass", origin: "env:P")))
        let defaults = try RelayConfig.parse(Array(#"{ "sources": { "fs": { "provider": "fastspring", "secret": "s", "reconcile": { "url": "http://127.0.0.1:9", "username": "u", "password": "p" } } } }"#.utf8), file: "routes.json", environment: [:])
        #expect(defaults.sources["fs"]?.reconcile?.everyMillis == 15 * 60_000 && defaults.sources["fs"]?.reconcile?.lookbackMillis == 3 * 86_400_000)
        let bad = configIssues(#"""
        { "sources": { "fs": { "provider": "fastspring", "secret": "s", "reconcile": { "url": "ftp://x", "username": "env:NOPE", "every": "10ms", "lookback": "40d", "colour": 1 } },
                       "r": { "provider": "runa", "secret": "whsec_cGxhY2Vob2xkZXI=", "reconcile": { "url": "https://api.runa.io/v2", "username": "k" } },
                       "g": { "provider": "generic", "reconcile": {} } } }
        """#)
        #expect(bad.contains("routes.json: sources.fs.reconcile.colour: unknown key (allowed: every, lookback, password, timeout_ms, url, username)"), "\(bad)")
        #expect(bad.contains { $0.hasPrefix("routes.json: sources.fs.reconcile.url: must be an http or https URL") }, "\(bad)")
        #expect(bad.contains("routes.json: sources.fs.reconcile.username: environment variable NOPE is not set"), "\(bad)")
        #expect(bad.contains { $0.hasPrefix("routes.json: sources.fs.reconcile.password: is required") }, "\(bad)")
        #expect(bad.contains("routes.json: sources.fs.reconcile.every: must be at least 1s"), "\(bad)")
        #expect(bad.contains { $0.hasPrefix("routes.json: sources.fs.reconcile.lookback: must be at most 30d") }, "\(bad)")
        #expect(bad.contains("routes.json: sources.r.reconcile.username: unknown key (allowed: api_key, every, lookback, timeout_ms, url)"), "\(bad)")
        #expect(bad.contains { $0.hasPrefix("routes.json: sources.r.reconcile.api_key: is required") }, "\(bad)")
        #expect(bad.contains { $0.hasPrefix("routes.json: sources.g.reconcile: only fastspring and runa sources can reconcile") }, "\(bad)")
        let runa = try RelayConfig.parse(Array(#"{ "sources": { "r": { "provider": "runa", "secret": "whsec_cGxhY2Vob2xkZXI=", "reconcile": { "url": "https://api.runa.io/v2", "api_key": "env:K" } } } }"#.utf8), file: "routes.json", environment: ["K": "key"])
        #expect(runa.sources["r"]?.reconcile?.credentials == .apiKey(Secret(value: "key", origin: "env:K")))
    }

    @Test func enrichNeedsATemplateAndARunaSourceThatReconciles() {
        let issues = configIssues(#"{ "sources": { "s": { "provider": "generic" } }, "destinations": { "a": { "url": "http://127.0.0.1:9/a", "enrich": "runa-order" }, "b": { "url": "http://127.0.0.1:9/b", "enrich": "gossip", "body_template": "{}" } } }"#)
        #expect(issues.contains("routes.json: destinations.a.enrich: needs a body_template: the fetched order is only seen through {{order.…}}"), "\(issues)")
        #expect(issues.contains("routes.json: destinations.b.enrich: must be \"runa-order\", not \"gossip\""), "\(issues)")
        let noAPI = configIssues(#"{ "sources": { "s": { "provider": "generic" } }, "destinations": { "c": { "url": "http://127.0.0.1:9/c", "enrich": "runa-order", "body_template": "{{order.id}}" } } }"#)
        #expect(noAPI == ["routes.json: destinations.c.enrich: runa-order needs a runa source with a reconcile block (its api_key fetches the order)"], "\(noAPI)")
    }

    @Test func malformedFilesAndSecrets() {
        #expect(configIssues("{ not json").first?.hasPrefix("routes.json: (top level): not valid JSON") == true)
        #expect(configIssues("{ \"sources\": { \"r\": { \"provider\": \"runa\", \"secret\": \"env:R\" } } }", environment: ["R": "not base64!!"])
            == ["routes.json: sources.r.secret: the secret from env:R is not a Standard Webhooks secret (whsec_ followed by base64)"])
        #expect(configIssues("{ \"sources\": { \"r\": { \"provider\": \"runa\" } } }") == ["routes.json: sources.r.secret: is required for runa"])
    }

    @Test func emptyAndDegenerateSecretsAreRejected() {
        // An empty key would let anyone compute a valid signature.
        #expect(configIssues("{ \"sources\": { \"f\": { \"provider\": \"fastspring\", \"secret\": \"\" } } }")
            == ["routes.json: sources.f.secret: must not be empty"])
        #expect(configIssues("{ \"sources\": { \"r\": { \"provider\": \"runa\", \"secret\": \"env:R\" } } }", environment: ["R": "whsec_"])
            == ["routes.json: sources.r.secret: the secret from env:R is not a Standard Webhooks secret (whsec_ followed by base64)"])
        #expect(configIssues("{ \"sources\": { \"f\": { \"provider\": \"fastspring\", \"secret\": [] } } }")
            == ["routes.json: sources.f.secret: must list at least one secret"])
        #expect(configIssues("{ \"sources\": { \"g\": { \"provider\": \"generic\", \"max_body_bytes\": 16777216 } } }")
            == ["routes.json: sources.g.max_body_bytes: must be at most 8388608 (8 MiB), not 16777216"])
    }
}

@Suite struct BodyTemplateLimitTests {
    /// Found by fuzzing: the Mustache parser recurses per nested section, so a few hundred
    /// nested sections in a body_template (in routes.json, or in a replay's backtest config)
    /// overflowed the stack. Such templates are now refused with their path.
    @Test func deeplyNestedOrDelimiterChangingTemplatesAreRefusedNotParsed() {
        let deep = String(repeating: "{{#a}}", count: 5_000) + String(repeating: "{{/a}}", count: 5_000)
        let cases: [(String, String)] = [
            (deep, "nests sections"),
            (String(repeating: "{{ ^a}}", count: 40), "nests sections"),
            (String(repeating: "{{$a}}", count: 40), "nests sections"),
            ("{{=<% %>=}}" + String(repeating: "<%#a%>", count: 5_000), "delimiters"),
            (String(repeating: "x", count: 70_000), "bytes"),
        ]
        for (template, expected) in cases {
            let file = #"{"sources":{"s":{"provider":"generic"}},"destinations":{"d":{"url":"http://127.0.0.1:9/","body_template":"# + JSONWriter.quote(template) + "}}}"
            let issues = configIssues(file)
            #expect(issues.contains { $0.contains("destinations.d.body_template") && $0.contains(expected) }, "\(expected): \(issues.prefix(2))")
        }
        // Nesting that is merely deep enough for real use still works.
        let fine = String(repeating: "{{#a}}", count: 32) + "x" + String(repeating: "{{/a}}", count: 32)
        #expect(throws: Never.self) { _ = try BodyTemplate(fine) }
    }
}
