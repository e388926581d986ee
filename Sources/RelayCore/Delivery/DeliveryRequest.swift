/// The request one delivery attempt sends (SPEC §6): the event's own bytes (a FastSpring event
/// inside a single-event `{"events":[…]}` envelope, so FastSpring handlers work unchanged) or the
/// destination's rendered `body_template`, and the relay's headers.
public struct DeliveryRequest: Sendable {
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// Builds the request for attempt number `attempt` (1 for the first) at `now`.
    public init(event: Event, destination: DestinationConfig, template: BodyTemplate?, attempt: Int, replay: Bool, now: Timestamp, extra: [String: JSONValue] = [:]) {
        url = destination.url
        if let template {
            body = template.render(event, extra: extra)
        } else if event.provider == ProviderKind.fastspring.rawValue {
            body = Array("{\"events\":[".utf8) + event.body + Array("]}".utf8)
        } else {
            body = event.body
        }
        let contentType = template == nil ? (event.headers.first { $0.name == "content-type" }?.value ?? "application/json") : "application/json"
        let timestamp = String(now.seconds)
        var headers: [(name: String, value: String)] = [
            ("content-type", contentType),
            ("webhook-id", event.id),
            ("webhook-timestamp", timestamp),
        ]
        if let secret = destination.signingSecret, let key = Signatures.standardWebhooksKey(secret.value) {
            let mac = Signatures.hmacSHA256(key: key, message: Array("\(event.id).\(timestamp).".utf8) + body)
            headers.append(("webhook-signature", "v1," + Signatures.base64Encode(mac)))
        }
        headers.append(("x-relay-source", event.source))
        headers.append(("x-relay-provider", event.provider))
        headers.append(("x-relay-attempt", String(attempt)))
        if replay { headers.append(("x-relay-replay", "1")) }
        for header in destination.headers { headers.append((header.name, header.value.value)) }
        self.headers = headers
    }
}
