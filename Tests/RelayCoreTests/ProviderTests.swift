import RelayCore
import RelayTesting
import Testing

func runaSource(secrets: [String] = [Fixtures.runaSecret]) -> SourceConfig {
    SourceConfig(name: "runa", provider: .runa, secrets: secrets.map { Secret(value: $0, origin: "test") }, signature: SignatureConfig(scheme: .standardWebhooks))
}

func fastSpringSource(secrets: [String] = [Fixtures.fastSpringSecret]) -> SourceConfig {
    SourceConfig(
        name: "fastspring", provider: .fastspring, secrets: secrets.map { Secret(value: $0, origin: "test") },
        signature: SignatureConfig(scheme: .hmacSHA256, header: "X-FS-Signature", encoding: .base64)
    )
}

func expectRejected(_ code: IngestError.Code, _ body: () throws(IngestError) -> Void, mentions: String? = nil) {
    do {
        try body()
        Issue.record("expected \(code) but the request was accepted")
    } catch {
        #expect(error.code == code, "got \(error.code): \(error.message)")
        if let mentions { #expect(error.message.contains(mentions), "message: \(error.message)") }
        // Never leak secrets or expected signatures.
        #expect(!error.message.contains("whsec_"))
        #expect(!error.message.contains(Fixtures.fastSpringSecret))
    }
}

@Suite struct RunaAdapterTests {
    @Test func fixtureVectorsVerifyAndNormalize() throws {
        for vector in Fixtures.runaVectors {
            let body = try Fixtures.bytes(vector.file)
            let now = Timestamp(seconds: vector.timestamp + 10)
            let events = try ProviderAdapters.normalize(
                source: runaSource(), headers: Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: vector.signature),
                body: body, now: now
            )
            #expect(events.count == 1)
            let event = try #require(events.first)
            #expect(event.type == "order.completion")
            #expect(event.status == (vector.file.contains("failed") ? "FAILED" : "COMPLETED"))
            #expect(event.orderID == (vector.file.contains("failed") ? "O-01JPAXB3D6F8G1H4J7K9M2N5P8" : "O-01JPAX7K4M2N8Q5R6T9V3W1Y0Z"))
            #expect(event.products == [])
            // An order's final status is its de-duplication key (the svix-id stays in the headers).
            #expect(event.providerEventID == "order:\(event.orderID):\(event.status)")
            #expect(event.headers.contains { $0.name == "svix-id" && $0.value == vector.id })
            #expect(event.body == body)
            // The test vectors are also what our signer produces.
            #expect(Fixtures.svixSignature(secret: Fixtures.runaSecret, id: vector.id, timestamp: vector.timestamp, body: body) == vector.signature)
        }
    }

    @Test func runaDocsVector() throws {
        let body = Array("{\"test\": 2432232314}".utf8)
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        #expect(Fixtures.svixSignature(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body) == expected)
        let id = try Signatures.verifyStandardWebhooks(
            headers: Fixtures.runaHeaders(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, signature: expected),
            body: body, secrets: [Secret(value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", origin: "test")], names: .svix,
            toleranceMillis: 300_000, now: Timestamp(seconds: 1_614_265_330)
        )
        #expect(id == "msg_p5jXN8AQM9LWM0D4loKWxJek")
    }

    @Test func productUpdateIsRecognisedByShape() throws {
        let body = Array("{\"product_code\":\"AMZ-US\",\"name\":\"Amazon\"}".utf8)
        let signature = Fixtures.svixSignature(secret: Fixtures.runaSecret, id: "msg_p1", timestamp: 1_700_000_000, body: body)
        let event = try #require(try ProviderAdapters.normalize(
            source: runaSource(), headers: Fixtures.runaHeaders(id: "msg_p1", timestamp: 1_700_000_000, signature: signature),
            body: body, now: Timestamp(seconds: 1_700_000_000)
        ).first)
        #expect(event.type == "product.update")
        #expect(event.products == ["AMZ-US"])
        #expect(event.status == "")
    }

    @Test func badSignaturesAndTimestampsAre401NamingTheHeader() throws {
        let vector = Fixtures.runaVectors[0]
        let body = try Fixtures.bytes(vector.file)
        let now = Timestamp(seconds: vector.timestamp)
        func run(_ headers: HeaderList, at time: Timestamp = now, source: SourceConfig = runaSource()) throws(IngestError) {
            _ = try ProviderAdapters.normalize(source: source, headers: headers, body: body, now: time)
        }
        expectRejected(.unauthorized, { () throws(IngestError) in try run(["svix-timestamp": "\(vector.timestamp)", "svix-signature": vector.signature]) }, mentions: "svix-id")
        expectRejected(.unauthorized, { () throws(IngestError) in try run(["svix-id": vector.id, "svix-signature": vector.signature]) }, mentions: "svix-timestamp")
        expectRejected(.unauthorized, { () throws(IngestError) in try run(["svix-id": vector.id, "svix-timestamp": "\(vector.timestamp)"]) }, mentions: "svix-signature")
        expectRejected(.unauthorized, { () throws(IngestError) in try run(Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: vector.signature), at: Timestamp(seconds: vector.timestamp + 301)) }, mentions: "tolerance")
        expectRejected(.unauthorized, { () throws(IngestError) in try run(Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: vector.signature), at: Timestamp(seconds: vector.timestamp - 301)) }, mentions: "tolerance")
        // Within tolerance on both sides is fine.
        try run(Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: vector.signature), at: Timestamp(seconds: vector.timestamp + 299))
        expectRejected(.unauthorized, { () throws(IngestError) in try run(Fixtures.runaHeaders(id: vector.id + "x", timestamp: vector.timestamp, signature: vector.signature)) }, mentions: "invalid signature")
        expectRejected(.unauthorized, { () throws(IngestError) in try run(Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: "v1,AAAA")) }, mentions: "invalid signature")
        expectRejected(.unauthorized, { () throws(IngestError) in try run(Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: "v2," + vector.signature.dropFirst(3))) }, mentions: "no v1")
        expectRejected(.unauthorized, { () throws(IngestError) in try run(Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: vector.signature), source: runaSource(secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])) }, mentions: "invalid signature")
    }

    @Test func anyOfSeveralSignaturesAndAnyOfSeveralSecrets() throws {
        let vector = Fixtures.runaVectors[1]
        let body = try Fixtures.bytes(vector.file)
        let now = Timestamp(seconds: vector.timestamp)
        let multi = "v1,Zm9vYmFy v1a,xyz \(vector.signature)"
        #expect(try ProviderAdapters.normalize(source: runaSource(), headers: Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: multi), body: body, now: now).count == 1)
        // Rotation: the old secret is listed first, the current one second.
        let rotated = runaSource(secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Fixtures.runaSecret])
        #expect(try ProviderAdapters.normalize(source: rotated, headers: Fixtures.runaHeaders(id: vector.id, timestamp: vector.timestamp, signature: vector.signature), body: body, now: now).count == 1)
    }

    @Test func unparseableBodiesAre400AfterAValidSignature() {
        for bad in ["not json", "[1,2]", "{\"id\":\"x\"}", "{\"status\":5}"] {
            let body = Array(bad.utf8)
            let signature = Fixtures.svixSignature(secret: Fixtures.runaSecret, id: "msg_bad", timestamp: 1_700_000_000, body: body)
            expectRejected(.badRequest, { () throws(IngestError) in
                _ = try ProviderAdapters.normalize(source: runaSource(), headers: Fixtures.runaHeaders(id: "msg_bad", timestamp: 1_700_000_000, signature: signature), body: body, now: Timestamp(seconds: 1_700_000_000))
            })
        }
    }
}

@Suite struct FastSpringAdapterTests {
    @Test func fixtureVectorsVerify() throws {
        for vector in Fixtures.fastSpringVectors {
            let body = try Fixtures.bytes(vector.file)
            #expect(Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: body) == vector.signature)
            let events = try ProviderAdapters.normalize(source: fastSpringSource(), headers: ["X-FS-Signature": vector.signature], body: body, now: Timestamp(seconds: 0))
            #expect(events.count == (vector.file.contains("batch") ? 3 : 1))
        }
    }

    @Test func batchSplitsIntoThreeEventsWithTheirOwnBytes() throws {
        let vector = Fixtures.fastSpringVectors[1]
        let body = try Fixtures.bytes(vector.file)
        // The header name is matched case-insensitively.
        let events = try ProviderAdapters.normalize(source: fastSpringSource(), headers: ["x-fs-signature": vector.signature], body: body, now: Timestamp(seconds: 0))
        #expect(events.map(\.type) == ["order.completed", "order.completed", "order.failed"])
        #expect(events.map(\.status) == ["COMPLETED", "COMPLETED", "FAILED"])
        #expect(events.map(\.products) == [["relay-team-5seat"], ["relay-addon-priority-support"], ["relay-pro-annual"]])
        #expect(events.map(\.orderID) == ["Tf9Lb3QxNz7Ks2WcJm5VgR", "Zc5Nq1Rv8Hm3Tx6Kb9WsLp", "Wd7Kx2Pm9Bq4Lz1Nv6TcHs"])
        #expect(events.map(\.providerEventID) == ["a8Rt3ZkQ1wMx6NcV5pLsYe", "Ks9Vb2Xn7QmT4RwL1zJcHd", "Yp5Lc8Nw3KtR6XbM2qZvFg"])
        let whole = try JSONParser.parse(body)
        for (index, event) in events.enumerated() {
            // Exact bytes of the element: a contiguous slice of the body that parses to the element.
            #expect(event.body.first == UInt8(ascii: "{") && event.body.last == UInt8(ascii: "}"))
            #expect(body.firstRange(of: event.body) != nil)
            #expect(try JSONParser.parse(event.body) == whole["events"]?.arrayValue?[index])
        }
    }

    @Test(arguments: [
        ("order.completed", "", "COMPLETED"), ("order.failed", "", "FAILED"), ("order.canceled", "", "CANCELED"),
        ("subscription.charge.completed", "", "COMPLETED"), ("subscription.charge.failed", "", "FAILED"),
        ("fulfillment.failed", "", "FAILED"), ("return.created", "true", "COMPLETED"), ("return.created", "false", "FAILED"),
        ("account.updated", "", ""),
    ])
    func statusMapping(type: String, completed: String, status: String) throws {
        let data = completed.isEmpty ? "{\"id\":\"o\"}" : "{\"id\":\"o\",\"completed\":\(completed)}"
        let body = Array("{\"events\":[{\"id\":\"e1\",\"type\":\"\(type)\",\"data\":\(data)}]}".utf8)
        let signature = Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: body)
        let event = try #require(try ProviderAdapters.normalize(source: fastSpringSource(), headers: ["X-FS-Signature": signature], body: body, now: Timestamp(seconds: 0)).first)
        #expect(event.status == status)
    }

    @Test func badInput() throws {
        let good = try Fixtures.bytes("fastspring-batch.json")
        expectRejected(.unauthorized, { () throws(IngestError) in
            _ = try ProviderAdapters.normalize(source: fastSpringSource(), headers: [:], body: good, now: Timestamp(seconds: 0))
        }, mentions: "X-FS-Signature")
        var tampered = good
        tampered[200] ^= 0x01
        expectRejected(.unauthorized, { () throws(IngestError) in
            _ = try ProviderAdapters.normalize(source: fastSpringSource(), headers: ["X-FS-Signature": Fixtures.fastSpringVectors[1].signature], body: tampered, now: Timestamp(seconds: 0))
        }, mentions: "invalid signature")
        for (text, reason) in [("nope", "not valid JSON"), ("{\"data\":1}", "no events array"), ("{\"events\":{}}", "no events array"),
                               ("{\"events\":[{\"type\":\"order.completed\"}]}", "events[0] has no id"),
                               ("{\"events\":[{\"id\":\"a\",\"type\":\"x\"},{\"id\":\"b\"}]}", "events[1] has no type"), ("{\"events\":[7]}", "not an object")] {
            let body = Array(text.utf8)
            expectRejected(.badRequest, { () throws(IngestError) in
                _ = try ProviderAdapters.normalize(source: fastSpringSource(), headers: ["X-FS-Signature": Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: body)], body: body, now: Timestamp(seconds: 0))
            }, mentions: reason)
        }
    }

    @Test func aBatchKeepsItsAcceptableEventsBesideTheRejectedOnes() throws {
        let text = #"{"events":[{"id":"a","type":"order.completed","data":{"id":"o1"}},{"type":"x"},[1],{"id":"b","type":""},{"id":"c","type":"order.failed"}]}"#
        let body = Array(text.utf8)
        let batch = try ProviderAdapters.split(source: fastSpringSource(), headers: ["X-FS-Signature": Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: body)], body: body, now: Timestamp(seconds: 0))
        #expect(batch.events.map(\.providerEventID) == ["a", "c"])
        #expect(batch.events.map { String(decoding: $0.body, as: UTF8.self) } == [#"{"id":"a","type":"order.completed","data":{"id":"o1"}}"#, #"{"id":"c","type":"order.failed"}"#])
        #expect(batch.rejected == [
            RejectedEvent(index: 1, providerEventID: nil, reason: "events[1] has no id"),
            RejectedEvent(index: 2, providerEventID: nil, reason: "events[2] is not an object"),
            RejectedEvent(index: 3, providerEventID: "b", reason: "events[3] has no type"),
        ])
        // Nothing acceptable: the request is refused, with every event's reason.
        let none = Array(#"{"events":[{"type":"x"},{"id":"d"}]}"#.utf8)
        do {
            _ = try ProviderAdapters.split(source: fastSpringSource(), headers: ["X-FS-Signature": Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: none)], body: none, now: Timestamp(seconds: 0))
            Issue.record("a batch with no acceptable event was accepted")
        } catch {
            #expect(error.code == .badRequest && error.rejected.count == 2 && error.message.contains("no event in the batch can be accepted"), "\(error)")
        }
    }
}

@Suite struct GenericAdapterTests {
    let body = Array("{\"id\":\"ev_9\",\"topic\":\"orders/paid\",\"status\":\"paid\",\"order\":{\"id\":42},\"line_items\":[{\"sku\":\"cloud-s\"},{\"sku\":\"cloud-m\"}]}".utf8)
    let fields = FieldPointers(id: "/id", type: "/topic", status: "/status", product: "/line_items/*/sku", orderID: "/order/id")

    func source(_ signature: SignatureConfig, secrets: [String] = ["shh"]) -> SourceConfig {
        SourceConfig(name: "shop", provider: .generic, secrets: secrets.map { Secret(value: $0, origin: "test") }, signature: signature, fields: fields)
    }

    @Test func fieldsComeFromJSONPointers() throws {
        let event = try #require(try ProviderAdapters.normalize(source: source(SignatureConfig(scheme: .none)), headers: [:], body: body, now: Timestamp(seconds: 0)).first)
        #expect(event.providerEventID == "ev_9")
        #expect(event.type == "orders/paid")
        #expect(event.status == "paid")
        #expect(event.orderID == "42")
        #expect(event.products == ["cloud-s", "cloud-m"])
    }

    @Test func hmacHexWithPrefixAndBase64() throws {
        let mac = Signatures.hmacSHA256(key: Array("shh".utf8), message: body)
        let github = SignatureConfig(scheme: .hmacSHA256, header: "X-Hub-Signature-256", encoding: .hex, prefix: "sha256=")
        _ = try ProviderAdapters.normalize(source: source(github), headers: ["x-hub-signature-256": "sha256=" + Digest.hex(mac)], body: body, now: Timestamp(seconds: 0))
        expectRejected(.unauthorized, { () throws(IngestError) in
            _ = try ProviderAdapters.normalize(source: source(github), headers: ["x-hub-signature-256": Digest.hex(mac)], body: body, now: Timestamp(seconds: 0))
        }, mentions: "sha256=")
        let shopify = SignatureConfig(scheme: .hmacSHA256, header: "X-Shop-Hmac", encoding: .base64)
        _ = try ProviderAdapters.normalize(source: source(shopify), headers: ["X-Shop-Hmac": Signatures.base64Encode(mac)], body: body, now: Timestamp(seconds: 0))
        expectRejected(.unauthorized, { () throws(IngestError) in
            _ = try ProviderAdapters.normalize(source: source(shopify, secrets: ["other"]), headers: ["X-Shop-Hmac": Signatures.base64Encode(mac)], body: body, now: Timestamp(seconds: 0))
        }, mentions: "invalid signature")
    }

    @Test func standardWebhooksUsesWebhookIDAsDedupKeyWithoutAnIDField() throws {
        let secret = "whsec_" + Signatures.base64Encode(Array("generic-key-123".utf8))
        var plain = source(SignatureConfig(scheme: .standardWebhooks), secrets: [secret])
        plain.fields = FieldPointers(type: "/topic")
        let signature = Fixtures.svixSignature(secret: secret, id: "msg_1", timestamp: 1_700_000_000, body: body)
        let event = try #require(try ProviderAdapters.normalize(
            source: plain, headers: ["webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": signature],
            body: body, now: Timestamp(seconds: 1_700_000_100)
        ).first)
        #expect(event.providerEventID == "msg_1")
        #expect(event.type == "orders/paid")
    }

    @Test func stripeSignatureWithTolerance() throws {
        let stripe = SignatureConfig(scheme: .stripe, toleranceMillis: 300_000)
        let mac = Digest.hex(Signatures.hmacSHA256(key: Array("shh".utf8), message: Array("1700000000.".utf8) + body))
        let header = "t=1700000000,v1=\(String(repeating: "0", count: 64)),v1=\(mac)"
        _ = try ProviderAdapters.normalize(source: source(stripe), headers: ["Stripe-Signature": header], body: body, now: Timestamp(seconds: 1_700_000_200))
        expectRejected(.unauthorized, { () throws(IngestError) in
            _ = try ProviderAdapters.normalize(source: source(stripe), headers: ["Stripe-Signature": header], body: body, now: Timestamp(seconds: 1_700_000_400))
        }, mentions: "tolerance")
        expectRejected(.unauthorized, { () throws(IngestError) in
            _ = try ProviderAdapters.normalize(source: source(stripe), headers: ["Stripe-Signature": "v1=\(mac)"], body: body, now: Timestamp(seconds: 1_700_000_000))
        }, mentions: "t=")
    }

    @Test func nonJSONWithFieldsIs400ButAcceptedWithoutFields() throws {
        let text = Array("a=1&b=2".utf8)
        expectRejected(.badRequest, { () throws(IngestError) in
            _ = try ProviderAdapters.normalize(source: source(SignatureConfig(scheme: .none)), headers: [:], body: text, now: Timestamp(seconds: 0))
        })
        let raw = SourceConfig(name: "raw", provider: .generic)
        #expect(try ProviderAdapters.normalize(source: raw, headers: [:], body: text, now: Timestamp(seconds: 0)).first?.body == text)
    }
}

@Suite struct RejectionLogTests {
    @Test func keepsTheNewestUpToItsCapacityNewestFirst() {
        let log = RejectionLog(capacity: 3)
        func entry(_ n: Int, _ source: String = "fs") -> RejectionEntry {
            RejectionEntry(time: Timestamp(seconds: Int64(n)), source: source, provider: "fastspring", event: RejectedEvent(index: n, providerEventID: nil, reason: "r\(n)"), batchAccepted: true)
        }
        #expect(log.recent(limit: 10).isEmpty)
        log.record([entry(1), entry(2)])
        #expect(log.recent(limit: 10).map(\.event.index) == [2, 1])
        log.record([entry(3), entry(4, "other"), entry(5)])
        #expect(log.recent(limit: 10).map(\.event.index) == [5, 4, 3], "the oldest two are gone")
        #expect(log.recent(limit: 2).map(\.event.index) == [5, 4])
        #expect(log.recent(source: "fs", limit: 10).map(\.event.index) == [5, 3])
        #expect(log.total == 5)
    }
}

@Suite struct RunaTimeTests {
    @Test func createdAtParsesInEveryShapeRunaWrites() {
        #expect(RunaReconciler.millis("2023-11-07T05:31:56Z") == 1_699_335_116_000)
        #expect(RunaReconciler.millis("2025-03-14T09:21:07.482+00:00") == 1_741_944_067_482)
        #expect(RunaReconciler.millis("2025-03-14T09:21:07.482113+00:00").map { abs($0 - 1_741_944_067_482) <= 1 } == true)
        #expect(RunaReconciler.millis("2025-03-14T10:21:07+01:00") == 1_741_944_067_000)
        #expect(RunaReconciler.millis("yesterday") == nil)
    }
}
