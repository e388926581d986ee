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
        let wanted = name.lowercased()
        return entries.first { $0.name.lowercased() == wanted }?.value
    }
}
