import RelayCore
import RelayTesting
import Testing

/// README "FastSpring": a signed batch with some events the adapter cannot accept is stored
/// without them and answered `202`, `text/plain`, with the ids of the events it holds, one per
/// line: FastSpring marks only those processed and sends the others again. The rejected ones are
/// logged, counted and listed by `GET /admin/rejections` and `relay events rejected`.
@Suite struct PartialAcknowledgementTests {
    static func signed(_ body: String) -> (body: [UInt8], headers: [(String, String)]) {
        let bytes = Array(body.utf8)
        return (bytes, [("Content-Type", "application/json"), ("X-FS-Signature", Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: bytes))])
    }

    static func event(_ id: String, type: String = "order.completed") -> String {
        "{\"id\":\"\(id)\",\"type\":\"\(type)\",\"live\":true,\"created\":1700000000000,\"data\":{\"id\":\"ord-\(id)\",\"completed\":true,\"items\":[{\"product\":\"cloud-s\"}]}}"
    }

    @Test(.timeLimit(.minutes(2)))
    func aBatchWithTwoMalformedEventsStoresTheOtherThreeAndAnswers202WithTheirIds() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let relay = try await LiveRelay(routes: """
        { "sources": { "fastspring": { "provider": "fastspring", "secret": "\(Fixtures.fastSpringSecret)" } },
          "destinations": { "orders": { "url": "http://127.0.0.1:\(port)/orders" } },
          "routes": [ { "name": "all", "to": ["orders"] } ] }
        """)
        let batch = "{\"events\":[\(Self.event("fs-1")),{\"type\":\"order.completed\",\"data\":{}},\(Self.event("fs-2")),7,\(Self.event("fs-3"))]}"
        let (body, headers) = Self.signed(batch)
        let answer = try await relay.post("fastspring", body: body, headers: headers)
        #expect(answer.status == 202, "\(answer.text)")
        #expect(answer.header("content-type")?.hasPrefix("text/plain") == true)
        #expect(answer.text == "fs-1\nfs-2\nfs-3\n", "the stored events' ids, one per line: \(answer.text)")
        #expect(await downstream.wait(timeout: .seconds(20)) { $0.count == 3 }, "the three good events are forwarded")
        let forwarded = downstream.requests.compactMap { try? JSONParser.parse($0.body)["events"]?.arrayValue?.first?["id"]?.stringValue }
        #expect(Set(forwarded) == ["fs-1", "fs-2", "fs-3"])
        #expect(try relay.storedEvents().map(\.providerEventID) == ["fs-1", "fs-2", "fs-3"])

        // The two rejected events: listed (newest first), with their position and reason, no body.
        let listed = try await relay.admin("/admin/rejections")
        #expect(listed.status == 200)
        let rejections = listed.json?["rejections"]?.arrayValue ?? []
        #expect(rejections.count == 2 && listed.json?["total"]?.doubleValue == 2, "\(String(describing: listed.json))")
        #expect(rejections.map { $0["index"]?.doubleValue } == [3, 1])
        #expect(rejections.map { $0["reason"]?.stringValue } == ["events[3] is not an object", "events[1] has no id"])
        #expect(rejections.allSatisfy { $0["batch"]?.stringValue == "partial" && $0["source"]?.stringValue == "fastspring" && $0["event_id"] == .null })
        #expect(!JSONWriter.serialize(listed.json ?? .null).contains("order.completed"), "nothing of a rejected event's body")
        let metrics = try await relay.metrics()
        #expect(sample(metrics, "relay_ingest_rejections_total", [#"source="fastspring""#, #"reason="bad_event""#]) == 2)

        // FastSpring sends the batch again (the two unlisted events): the same 202, nothing stored twice.
        let again = try await relay.post("fastspring", body: body, headers: headers)
        #expect(again.status == 202 && again.text == "fs-1\nfs-2\nfs-3\n", "\(again.text)")
        #expect(try relay.storedEvents().count == 3)

        // A batch of which nothing can be accepted is refused whole, as before, and listed as refused;
        // one with a type missing keeps its id in the listing.
        let (bad, badHeaders) = Self.signed("{\"events\":[{\"id\":\"fs-9\"}]}")
        let refused = try await relay.post("fastspring", body: bad, headers: badHeaders)
        let refusal = try JSONParser.parse(refused.body)["error"]?.stringValue ?? ""
        #expect(refused.status == 400 && refusal.contains("events[0] has no type"), "\(refused.text)")
        let newest = try await relay.admin("/admin/rejections?limit=1&source=fastspring").json?["rejections"]?.arrayValue?.first
        #expect(newest?["event_id"]?.stringValue == "fs-9" && newest?["batch"]?.stringValue == "refused", "\(String(describing: newest))")
        // A bad signature is still 401 for the whole request, and lists nothing.
        let forged = try await relay.post("fastspring", body: body, headers: [("X-FS-Signature", "AAAA")])
        #expect(forged.status == 401)
        // 2 + the same 2 again when FastSpring resent the batch + 1.
        #expect(try await relay.admin("/admin/rejections").json?["total"]?.doubleValue == 5)
        #expect(try await relay.admin("/admin/rejections?limit=0").status == 400)

        // The CLI.
        let admin = ["--admin", "http://127.0.0.1:\(relay.adminPort)"]
        let table = try await runRelay(["events", "rejected"] + admin)
        #expect(table.status == 0 && table.out.contains("events[3] is not an object") && table.out.contains("fs-9") && table.out.contains("5 rejected since"), "\(table.out)\(table.err)")
        let json = try await runRelay(["events", "rejected", "--json", "--limit", "2"] + admin)
        #expect(try JSONParser.parse(Array(json.out.utf8))["rejections"]?.arrayValue?.count == 2, "\(json.out)\(json.err)")
        let wrong = try await runRelay(["events", "rejected", "--limit", "5000"] + admin)
        #expect(wrong.status != 0 && wrong.err.contains("--limit"), "\(wrong.err)")
        await relay.stop()
        await downstream.stop()
    }
}
