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

    /// Bounds on a template, checked before the Mustache parser sees it: the parser recurses once
    /// per nested section, so a few thousand nested sections would exhaust the stack.
    public static let maxBytes = 65_536
    public static let maxNesting = 32

    public struct LimitError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Compiles `source`; throws `LimitError` or the parser's error.
    public init(_ source: String) throws {
        try Self.checkLimits(source)
        Self.registerJSONContentType
        // On a line of its own: a standalone pragma line is dropped from the output, and parse
        // errors keep their column numbers.
        template = try MustacheTemplate(string: "{{% CONTENT_TYPE: JSON}}\n" + source)
    }

    /// Size, nesting depth (sections `{{#`, `{{^`, `{{$`, `{{<` against `{{/`), and no delimiter
    /// changes (`{{=`), which would hide tags from this count.
    static func checkLimits(_ source: String) throws {
        let bytes = Array(source.utf8)
        guard bytes.count <= maxBytes else { throw LimitError(description: "is \(bytes.count) bytes; at most \(maxBytes)") }
        var depth = 0
        var index = 0
        while index + 1 < bytes.count {
            guard bytes[index] == 0x7B, bytes[index + 1] == 0x7B else {
                index += 1
                continue
            }
            index += 2
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            guard index < bytes.count else { break }
            switch bytes[index] {
            case 0x23, 0x5E, 0x24, 0x3C:  // # ^ $ <
                depth += 1
                if depth > maxNesting { throw LimitError(description: "nests sections more than \(maxNesting) deep") }
            case 0x2F:  // /
                depth = max(0, depth - 1)
            case 0x3D:  // =
                throw LimitError(description: "changes the tag delimiters ({{=…=}}), which body templates do not allow")
            default:
                break
            }
        }
    }

    /// `extra` adds top-level values (an enrichment's `order`), JSON as `payload` is.
    public func render(_ event: Event, extra: [String: JSONValue] = [:]) -> [UInt8] {
        var context: [String: Any] = [
            "event_id": event.id, "source": event.source, "provider": event.provider, "type": event.type,
            "status": event.status, "order_id": event.orderID, "provider_event_id": event.providerEventID,
            "products": event.products, "received_at": event.receivedAt.rfc3339,
            "payload_json": String(decoding: event.body, as: UTF8.self),
        ]
        if let payload = try? JSONParser.parse(event.body) { context["payload"] = Self.mustacheValue(payload) }
        for (key, value) in extra { context[key] = Self.mustacheValue(value) }
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
