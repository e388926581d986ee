/// `relay routes test`: what a payload becomes and where each event would go, without checking
/// signatures or storing anything.
public enum RouteTester {
    public struct Outcome: Sendable {
        public var event: Event
        public var decision: RoutingDecision
    }

    public static func run(config: RelayConfig, source name: String, headers: HeaderList, body: [UInt8], now: Timestamp) throws(IngestError) -> [Outcome] {
        guard let source = config.sources[name] else {
            throw IngestError(.unknownSource, "unknown source \(JSONWriter.quote(name)) (known: \(config.sources.keys.sorted().joined(separator: ", ")))")
        }
        let normalized = try ProviderAdapters.normalize(source: source, headers: headers, body: body, now: now, verifySignatures: false)
        return normalized.enumerated().map { index, item in
            let event = Event(
                id: "event-\(index + 1)", source: source.name, provider: source.provider.rawValue, type: item.type, status: item.status,
                products: item.products, orderID: item.orderID, providerEventID: item.providerEventID, receivedAt: now, headers: item.headers, body: item.body
            )
            return Outcome(event: event, decision: config.routing.decide(event))
        }
    }

    /// Machine output: `{"config_version":…,"source":…,"events":[…]}`.
    public static func json(_ outcomes: [Outcome], config: RelayConfig, source: String) -> String {
        let events = outcomes.map { outcome in
            let e = outcome.event
            return "{\"type\":\(JSONWriter.quote(e.type)),\"status\":\(JSONWriter.quote(e.status)),\"products\":\(JSONWriter.array(e.products)),"
                + "\"order_id\":\(JSONWriter.quote(e.orderID)),\"provider_event_id\":\(JSONWriter.quote(e.providerEventID)),"
                + "\"routes\":\(JSONWriter.array(outcome.decision.routes)),\"destinations\":\(JSONWriter.array(outcome.decision.destinations)),"
                + "\"unrouted\":\(outcome.decision.isUnrouted)}"
        }
        return "{\"config_version\":\(JSONWriter.quote(config.version)),\"source\":\(JSONWriter.quote(source)),\"events\":[\(events.joined(separator: ","))]}"
    }

    /// Human output, one block per event.
    public static func text(_ outcomes: [Outcome], config: RelayConfig, source: String) -> String {
        var lines = ["source \(source) (\(config.sources[source]?.provider.rawValue ?? "?")), config version \(config.version): \(outcomes.count) event\(outcomes.count == 1 ? "" : "s")"]
        for (index, outcome) in outcomes.enumerated() {
            let e = outcome.event
            lines.append("")
            lines.append("event \(index + 1) of \(outcomes.count)")
            lines.append("  type               \(e.type.isEmpty ? "-" : e.type)")
            lines.append("  status             \(e.status.isEmpty ? "-" : e.status)")
            lines.append("  products           \(e.products.isEmpty ? "-" : e.products.joined(separator: ", "))")
            lines.append("  order_id           \(e.orderID.isEmpty ? "-" : e.orderID)")
            lines.append("  provider_event_id  \(e.providerEventID.isEmpty ? "-" : e.providerEventID)")
            if outcome.decision.isUnrouted {
                lines.append("  routes             none: unrouted (stored and replayable, not forwarded)")
            } else {
                for name in outcome.decision.routes {
                    let targets = config.routing.routes.first { $0.name == name }?.destinations ?? []
                    lines.append("  route              \(name) -> \(targets.joined(separator: ", "))")
                }
                lines.append("  destinations       \(outcome.decision.destinations.joined(separator: ", "))")
            }
        }
        return lines.joined(separator: "\n")
    }
}
