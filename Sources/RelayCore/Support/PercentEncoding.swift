import Foundation

/// Percent-encoding (RFC 3986) of URL parts: a path parameter, a store URL's user or password,
/// what the CLI sends the admin API and what the reconciler sends a provider's API.
public enum PercentEncoding {
    /// A query value (or a path that keeps its `/`): `&`, `=`, `+`, `?` and `#` are encoded too.
    public static func queryValue(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+?#"))) ?? text
    }

    /// One path segment: as a query value, and its `/` encoded.
    public static func pathSegment(_ text: String) -> String {
        queryValue(text).replacingOccurrences(of: "/", with: "%2F")
    }

    /// `text` with each `%XX` decoded; nil when a `%` is not followed by two hex digits or the
    /// decoded bytes are not UTF-8.
    public static func decode(_ text: some StringProtocol) -> String? {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.first {
            utf8 = utf8.dropFirst()
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard utf8.count >= 2, let high = hex(utf8[utf8.startIndex]), let low = hex(utf8[utf8.startIndex + 1]) else { return nil }
            bytes.append(high << 4 | low)
            utf8 = utf8.dropFirst(2)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
