import Mustache
import Synchronization

/// A destination's `body_template`: Mustache over the normalized event. Values are escaped for
/// JSON string content (not HTML), so `"{\"text\":\"order {{order_id}} {{status}}\"}"` stays
/// valid JSON whatever the values hold. Triple braces insert raw text (`{{{payload_json}}}`).
///
/// The context: `event_id`, `source`, `provider`, `type`, `status`, `order_id`,
/// `provider_event_id`, `products` (a list), `received_at` (RFC 3339), `payload` (the event's JSON
/// as nested values, e.g. `{{payload.data.total}}`) and `payload_json` (the event's raw bytes).
public struct BodyTemplate: Sendable {
    private let template: MustacheTemplate

    /// Compiles `source`; throws the parser's error.
    public init(_ source: String) throws {
        Self.registerJSONContentType
        // On a line of its own: a standalone pragma line is dropped from the output, and parse
        // errors keep their column numbers.
        template = try MustacheTemplate(string: "{{% CONTENT_TYPE: JSON}}\n" + source)
    }

    public func render(_ event: Event) -> [UInt8] {
        var context: [String: Any] = [
            "event_id": event.id, "source": event.source, "provider": event.provider, "type": event.type,
            "status": event.status, "order_id": event.orderID, "provider_event_id": event.providerEventID,
            "products": event.products, "received_at": event.receivedAt.rfc3339,
            "payload_json": String(decoding: event.body, as: UTF8.self),
        ]
        if let payload = try? JSONParser.parse(event.body) { context["payload"] = Self.mustacheValue(payload) }
        return Array(template.render(context).utf8)
    }

    static func mustacheValue(_ value: JSONValue) -> Any {
        switch value {
        case .null: return ""
        case .bool(let flag): return flag
        case .number(_, let text): return text
        case .string(let text): return text
        case .array(let items): return items.map(mustacheValue)
        case .object(let members):
            var dictionary: [String: Any] = [:]
            for member in members { dictionary[member.key] = mustacheValue(member.value) }
            return dictionary
        }
    }

    private static let registerJSONContentType: Void = {
        MustacheContentTypes.register(JSONStringContent(), named: "JSON")
    }()

    /// Escapes text for the inside of a JSON string.
    struct JSONStringContent: MustacheContentType {
        func escapeText(_ text: String) -> String {
            String(JSONWriter.quote(text).dropFirst().dropLast())
        }
    }
}
