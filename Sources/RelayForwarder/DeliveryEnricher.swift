import RelayCore
/// Fetches what a destination's `enrich` asks for when a delivery is sent: template values
/// (`order` for `runa-order`). A failure fails the attempt, which its retry policy then
/// retries like a failed send.
public protocol DeliveryEnricher: Sendable {
    func values(for event: Event, _ enrichment: DestinationConfig.Enrichment) async -> Result<[String: JSONValue], TransportFailure>
}
