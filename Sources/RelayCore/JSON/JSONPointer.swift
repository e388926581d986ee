import Foundation

/// RFC 6901 JSON Pointer, extended with `*` as "every element of this array" (so
/// `/line_items/*/sku` reads every line item's sku). Parsed once, evaluated many times.
public struct JSONPointer: Sendable, Equatable, CustomStringConvertible {
    enum Token: Sendable, Equatable {
        case key(String)
        case any
    }

    let tokens: [Token]
    public let description: String

    /// Parses `text`; nil unless it is empty (the whole document) or starts with `/`.
    public init?(_ text: String) {
        description = text
        if text.isEmpty {
            tokens = []
            return
        }
        guard text.hasPrefix("/") else { return nil }
        var parsed: [Token] = []
        for raw in text.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            if raw == "*" {
                parsed.append(.any)
                continue
            }
            // ~1 before ~0, as RFC 6901 says.
            parsed.append(.key(raw.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")))
        }
        tokens = parsed
    }

    /// Every value the pointer reaches (several where it crosses a `*`).
    public func values(in document: JSONValue) -> [JSONValue] {
        var current = [document]
        for token in tokens {
            var next: [JSONValue] = []
            for value in current {
                switch (token, value) {
                case (.any, .array(let items)):
                    next.append(contentsOf: items)
                case (.key(let key), .object):
                    if let member = value[key] { next.append(member) }
                case (.key(let key), .array(let items)):
                    if let index = Int(key), index >= 0, index < items.count, String(index) == key { next.append(items[index]) }
                default:
                    break
                }
            }
            current = next
            if current.isEmpty { break }
        }
        return current
    }

    /// The first scalar reached, as text ("" if none).
    public func firstText(in document: JSONValue) -> String {
        values(in: document).lazy.compactMap(\.scalarText).first ?? ""
    }
}

