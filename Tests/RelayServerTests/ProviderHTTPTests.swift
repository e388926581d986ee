import RelayCore
import RelayTesting
import Testing

let providerRoutes = """
{
  "sources": {
    "runa": { "provider": "runa", "secret": "env:RUNA_WEBHOOK_SECRET" },
    "fastspring": { "provider": "fastspring", "secret": ["env:FS_OLD_SECRET", "env:FASTSPRING_WEBHOOK_SECRET"] }
  }
}
"""

let providerEnvironment = [
    "RUNA_WEBHOOK_SECRET": Fixtures.runaSecret,
    "FASTSPRING_WEBHOOK_SECRET": Fixtures.fastSpringSecret,
    "FS_OLD_SECRET": "an-older-secret",
]

@Suite struct ProviderHTTPTests {
    @Test func runaFixtureIsStoredOnceThenAcknowledgedAsDuplicate() async throws {
        let vector = Fixtures.runaVectors[1]
        let relay = try await LiveRelay(routes: providerRoutes, clock: FixedClock(Timestamp(seconds: vector.timestamp + 5)), environment: providerEnvironment)
        let body = try Fixtures.bytes(vector.file)
        let headers = [("Content-Type", "application/json"), ("svix-id", vector.id), ("svix-timestamp", "\(vector.timestamp)"), ("svix-signature", vector.signature)]
        let first = try await relay.post("runa", body: body, headers: headers)
        #expect(first.status == 200)
        #expect(try JSONParser.parse(first.body)["accepted"]?.doubleValue == 1)
        let again = try await relay.post("runa", body: body, headers: headers)
        #expect(again.status == 200)
        let json = try JSONParser.parse(again.body)
        #expect(json["accepted"]?.doubleValue == 0)
        #expect(json["duplicates"]?.doubleValue == 1)
        #expect(json["ids"] == (try JSONParser.parse(first.body))["ids"])
        let events = try relay.storedEvents()
        #expect(events.count == 1)
        #expect(events.first?.status == "FAILED")
        #expect(events.first?.provider == "runa")
        #expect(events.first?.providerEventID == "order:O-01JPAXB3D6F8G1H4J7K9M2N5P8:FAILED", "an order's final status is its de-duplication key")
        #expect(events.first?.headers.contains { $0.name == "svix-id" } == true)
        await relay.stop()
    }

    @Test func badSignatureIs401AndBadBodyIs400AndNothingIsStored() async throws {
        let vector = Fixtures.runaVectors[0]
        let relay = try await LiveRelay(routes: providerRoutes, clock: FixedClock(Timestamp(seconds: vector.timestamp)), environment: providerEnvironment)
        let body = try Fixtures.bytes(vector.file)
        let forged = try await relay.post("runa", body: body + [0x20], headers: [("svix-id", vector.id), ("svix-timestamp", "\(vector.timestamp)"), ("svix-signature", vector.signature)])
        #expect(forged.status == 401)
        let message = try JSONParser.parse(forged.body)["error"]?.stringValue ?? ""
        #expect(message.contains("svix-signature"))
        #expect(!message.contains(vector.signature.dropFirst(3)))
        let missing = try await relay.post("runa", body: body)
        #expect(missing.status == 401)
        let notJSON = Array("not json at all".utf8)
        let signed = try await relay.post("fastspring", body: notJSON, headers: [("x-fs-signature", Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: notJSON))])
        #expect(signed.status == 400)
        #expect(try JSONParser.parse(signed.body)["error"]?.stringValue?.contains("not valid JSON") == true)
        #expect(try relay.storedEvents().isEmpty)
        await relay.stop()
    }

    @Test func fastSpringBatchBecomesThreeEventsWithRotatedSecret() async throws {
        let relay = try await LiveRelay(routes: providerRoutes, environment: providerEnvironment)
        let vector = Fixtures.fastSpringVectors[1]
        let response = try await relay.post("fastspring", body: try Fixtures.bytes(vector.file), headers: [("Content-Type", "application/json"), ("X-FS-Signature", vector.signature)])
        #expect(response.status == 200)
        let json = try JSONParser.parse(response.body)
        #expect(json["accepted"]?.doubleValue == 3)
        #expect(json["ids"]?.arrayValue?.count == 3)
        let events = try relay.storedEvents()
        #expect(events.map(\.status) == ["COMPLETED", "COMPLETED", "FAILED"])
        #expect(events.map(\.type) == ["order.completed", "order.completed", "order.failed"])
        #expect(Set(events.map(\.receivedAt)).count == 1, "one request, one receive time")
        await relay.stop()
    }
}
