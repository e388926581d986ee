import RelayCore

/// Builds events with real relay ids (their time is the receive time, `start` plus an offset)
/// and routes them, as ingest would hand them to a store.
public final class TestEvents: Sendable {
    public let start: Timestamp
    public let clock: SettableClock
    public let ids: EventIDGenerator

    public init(start: Timestamp = Timestamp(milliseconds: 1_800_000_000_000)) {
        self.start = start
        clock = SettableClock(start)
        ids = EventIDGenerator(clock: clock)
    }

    public func candidate(
        _ providerID: String, source: String = "shop", type: String = "order.paid", status: String = "COMPLETED",
        products: [String] = [], at offset: Int64 = 0, to destinations: [String] = ["a"]
    ) -> IngestCandidate {
        let time = Timestamp(milliseconds: start.milliseconds + offset)
        clock.set(time)
        let event = Event(
            id: ids.next(), source: source, provider: "generic", type: type, status: status, products: products,
            orderID: "o-" + providerID, providerEventID: providerID, receivedAt: time,
            headers: [("content-type", "application/json")], body: Array("{\"id\":\"\(providerID)\"}".utf8)
        )
        return IngestCandidate(event: event, decision: RoutingDecision(eventID: event.id, configVersion: "v1", routes: destinations.isEmpty ? [] : ["r"], destinations: destinations))
    }
}
