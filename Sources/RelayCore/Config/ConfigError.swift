/// One problem in a configuration file, located by its path: `FILE: path.to.field: message`.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var path: String
    public var message: String

    public init(file: String, path: String, message: String) {
        self.file = file
        self.path = path
        self.message = message
    }

    public var description: String { "\(file): \(path.isEmpty ? "(top level)" : path): \(message)" }
}

/// Every problem found while loading a configuration file, all at once.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var issues: [ConfigIssue]

    public init(issues: [ConfigIssue]) {
        self.issues = issues
    }

    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// A secret value from the configuration. Its description never shows the value, so it cannot
/// leak into logs or admin output by accident.
public struct Secret: Sendable, Equatable, CustomStringConvertible {
    public let value: String
    /// Where it came from (`env:NAME` or `inline`), safe to show.
    public let origin: String

    public init(value: String, origin: String) {
        self.value = value
        self.origin = origin
    }

    public var description: String { "<secret from \(origin)>" }
}
