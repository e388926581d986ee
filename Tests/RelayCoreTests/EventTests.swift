import RelayCore
import Testing

@Suite struct EventTests {
    @Test func eventRoundTripsThroughItsJournalEncoding() throws {
        let event = Event(
            id: "evt_01ABC", source: "fastspring", provider: "fastspring", type: "order.completed", status: "COMPLETED",
            products: ["relay-team-5seat", "addon"], orderID: "ORD-1", providerEventID: "ev-1",
            receivedAt: Timestamp(milliseconds: 1_741_944_073_123),
            headers: [("content-type", "application/json"), ("x-fs-signature", "abc=")],
            body: Array("{\"a\":1}".utf8) + [0xFF, 0x00]
        )
        let decoded = try Event(decoding: event.encoded())
        #expect(decoded == event)
        // Every truncation of the payload is rejected, never misread.
        let bytes = event.encoded()
        for cut in 0..<bytes.count {
            #expect(throws: (any Error).self) { try Event(decoding: Array(bytes[0..<cut])) }
        }
        // The header decode reads the same fields without headers and body.
        #expect(try EventHeader(decoding: bytes) == EventHeader(event))
        #expect(try EventHeader(decoding: bytes).providerEventID == "ev-1")
        let headerEnd = bytes.count - event.body.count - 4 - 4 - event.headers.reduce(0) { $0 + 8 + $1.name.utf8.count + $1.value.utf8.count }
        for cut in 0..<headerEnd {
            #expect(throws: (any Error).self) { try EventHeader(decoding: Array(bytes[0..<cut])) }
        }
    }

    @Test func idsAreUniqueAndTimeOrdered() {
        let generator = EventIDGenerator(clock: FixedClock(Timestamp(milliseconds: 1_700_000_000_000)))
        let ids = (0..<1000).map { _ in generator.next() }
        #expect(Set(ids).count == 1000)
        #expect(ids == ids.sorted(), "ids within one millisecond keep increasing")
        #expect(ids.allSatisfy { $0.hasPrefix("evt_") && $0.count == 30 })
        let later = EventIDGenerator(clock: FixedClock(Timestamp(milliseconds: 1_700_000_000_001))).next()
        #expect(later > ids.last!)
    }

    @Test func timestampsFormatAsRFC3339() {
        #expect(Timestamp(milliseconds: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(milliseconds: 1_741_944_073_120).rfc3339 == "2025-03-14T09:21:13.120Z")
    }
}
