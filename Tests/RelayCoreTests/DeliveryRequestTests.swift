import RelayCore
import RelayTesting
import Testing

@Suite struct DeliveryRequestTests {
    let signing = Secret(value: "whsec_" + Signatures.base64Encode(Array("destination-signing-key".utf8)), origin: "test")

    func fastSpringEvent() throws -> Event {
        let vector = Fixtures.fastSpringVectors[1]
        let item = try #require(try ProviderAdapters.normalize(
            source: fastSpringSource(), headers: ["X-FS-Signature": vector.signature, "content-type": "application/json"],
            body: try Fixtures.bytes(vector.file), now: Timestamp(seconds: 0)
        ).last)
        return Event(
            id: "evt_01M82FAGVQESF9A9ZY1GTR9G8G", source: "fastspring", provider: "fastspring", type: item.type, status: item.status,
            products: item.products, orderID: item.orderID, providerEventID: item.providerEventID,
            receivedAt: Timestamp(seconds: 1_741_946_565), headers: item.headers, body: item.body
        )
    }

    @Test func fastSpringEventIsForwardedInItsOwnEnvelopeWithRelayHeaders() throws {
        let event = try fastSpringEvent()
        let destination = DestinationConfig(name: "orders", url: "http://127.0.0.1:9001/hooks", headers: [("Authorization", Secret(value: "Bearer t0k", origin: "test"))], signingSecret: signing)
        let request = DeliveryRequest(event: event, destination: destination, template: nil, attempt: 3, replay: false, now: Timestamp(seconds: 1_741_946_600))
        #expect(request.url == "http://127.0.0.1:9001/hooks")
        let envelope = try JSONParser.parse(request.body)
        #expect(envelope["events"]?.arrayValue?.count == 1)
        #expect(envelope["events"]?.arrayValue?.first == (try JSONParser.parse(event.body)))
        func header(_ name: String) -> String? { request.headers.first { $0.name == name }?.value }
        #expect(header("webhook-id") == event.id)
        #expect(header("webhook-timestamp") == "1741946600")
        #expect(header("x-relay-source") == "fastspring")
        #expect(header("x-relay-provider") == "fastspring")
        #expect(header("x-relay-attempt") == "3")
        #expect(header("x-relay-replay") == nil)
        #expect(header("Authorization") == "Bearer t0k")
        #expect(header("content-type") == "application/json")
        // A receiver checks the signature with the Standard Webhooks algorithm.
        let verifiedID = try Signatures.verifyStandardWebhooks(
            headers: HeaderList(request.headers), body: request.body, secrets: [signing], names: .standard,
            toleranceMillis: 300_000, now: Timestamp(seconds: 1_741_946_600)
        )
        #expect(verifiedID == event.id)
        // …and a tampered body does not verify.
        #expect(throws: IngestError.self) {
            try Signatures.verifyStandardWebhooks(
                headers: HeaderList(request.headers), body: request.body + [0x20], secrets: [signing], names: .standard,
                toleranceMillis: 300_000, now: Timestamp(seconds: 1_741_946_600)
            )
        }
    }

    @Test func otherProvidersForwardTheirBytesAsTheyAreAndReplaysAreMarked() {
        let event = Event(id: "evt_1", source: "runa", provider: "runa", receivedAt: Timestamp(seconds: 0), headers: [("content-type", "application/json; charset=utf-8")], body: Array("{\"id\":\"O-1\"}".utf8))
        let request = DeliveryRequest(event: event, destination: DestinationConfig(name: "d", url: "https://example.com/x"), template: nil, attempt: 1, replay: true, now: Timestamp(seconds: 5))
        #expect(request.body == event.body)
        #expect(request.headers.contains { $0.name == "x-relay-replay" && $0.value == "1" })
        #expect(request.headers.contains { $0.name == "content-type" && $0.value == "application/json; charset=utf-8" })
        #expect(!request.headers.contains { $0.name == "webhook-signature" }, "no signing_secret, no signature")
    }

    @Test func templatesRenderTheNormalizedEventAsValidJSON() throws {
        var event = try fastSpringEvent()
        event.status = "FAILED \"hard\"\n"  // quotes and control characters must not break the JSON
        let template = try BodyTemplate(#"{"text":"{{provider}} order {{order_id}} {{status}}","items":[{{#products}}"{{.}}"{{/products}}],"total":{{payload.data.total}},"raw":{{{payload_json}}}}"#)
        let request = DeliveryRequest(event: event, destination: DestinationConfig(name: "alerts", url: "http://127.0.0.1:9002/alert"), template: template, attempt: 1, replay: false, now: Timestamp(seconds: 0))
        let json = try JSONParser.parse(request.body)
        #expect(json["text"]?.stringValue == "fastspring order Wd7Kx2Pm9Bq4Lz1Nv6TcHs FAILED \"hard\"\n")
        #expect(json["items"] == .array([.string("relay-pro-annual")]))
        #expect(json["total"]?.doubleValue == 178.8, "the fixture's data.total, as a JSON number")
        #expect(json["raw"] == (try JSONParser.parse(event.body)))
        #expect(request.headers.contains { $0.name == "content-type" && $0.value == "application/json" })
    }
}
