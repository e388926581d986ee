/// Minimal JSON output for responses and CLI: string escaping and small object builders.
public enum JSONWriter {
    /// `value` as a JSON string literal, quotes included.
    public static func quote(_ value: String) -> String {
        // Most strings (ids, names, types) need no escape: one copy, no per-character appends.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            var out = ""
            out.reserveCapacity(value.utf8.count + 2)
            out += "\""
            out += value
            out += "\""
            return out
        }
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
        return out
    }

    /// `{"error":"message"}`.
    public static func error(_ message: String) -> String {
        "{\"error\":\(quote(message))}"
    }

    /// A JSON array of strings.
    public static func array(_ values: [String]) -> String {
        var out = "["
        out.reserveCapacity(values.reduce(2) { $0 + $1.utf8.count + 3 })
        for (index, value) in values.enumerated() {
            if index > 0 { out += "," }
            out += quote(value)
        }
        out += "]"
        return out
    }

    /// Serializes a parsed value compactly (keys in their original order).
    public static func serialize(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .number(_, let text): text
        case .string(let text): quote(text)
        case .array(let items): "[" + items.map(serialize).joined(separator: ",") + "]"
        case .object(let members): "{" + members.map { quote($0.key) + ":" + serialize($0.value) }.joined(separator: ",") + "}"
        }
    }
}
