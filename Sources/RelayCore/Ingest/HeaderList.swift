/// Request headers as received, looked up case-insensitively (HTTP header names are).
public struct HeaderList: Sendable, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [(name: String, value: String)]

    public init(_ entries: [(name: String, value: String)] = []) {
        self.entries = entries
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.entries = elements.map { (name: $0.0, value: $0.1) }
    }

    public mutating func append(name: String, value: String) {
        entries.append((name, value))
    }

    /// The first value of `name`, matched case-insensitively.
    public subscript(name: String) -> String? {
        entries.first { Self.equalIgnoringASCIICase($0.name, name) }?.value
    }

    /// Header names are ASCII tokens: compared byte by byte, without building lower-cased copies.
    static func equalIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        var left = a.utf8.makeIterator(), right = b.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil): return true
            case (let x?, let y?):
                guard x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A) else { return false }
            default: return false
            }
        }
    }
}
