import RelayCore

/// Where the PostgreSQL store lives: `postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=MODE`
/// (`postgresql://` too). User, password and database are percent-decoded; the port defaults to
/// 5432; `sslmode` is `disable`, `prefer` (the default), `require` or `verify-full`. The
/// password never appears in `description`.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable
        case prefer
        case require
        case verifyFull = "verify-full"
    }

    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var sslMode: SSLMode

    /// The URL with the password replaced by `***`: safe for logs and error messages.
    public var description: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)?sslmode=\(sslMode.rawValue)"
    }

    /// Parses `text`; a malformed URL throws one `PostgresURLError` naming the part that is wrong
    /// (never echoing the password).
    public init(_ text: String) throws(PostgresURLError) {
        let schemes = ["postgres://", "postgresql://"]
        guard let scheme = schemes.first(where: { text.hasPrefix($0) }) else {
            throw PostgresURLError("scheme", "must start with postgres:// or postgresql://")
        }
        var rest = Substring(text.dropFirst(scheme.count))
        var query = Substring("")
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw PostgresURLError("database", "missing: add /DATABASE after the host") }
        let authority = rest[..<slash]
        let databaseText = rest[rest.index(after: slash)...]
        guard !databaseText.isEmpty, !databaseText.contains("/") else { throw PostgresURLError("database", "must be one path segment, like /relay") }
        database = try Self.decode(databaseText, part: "database")
        guard let at = authority.lastIndex(of: "@") else { throw PostgresURLError("user", "missing: write USER@HOST") }
        let credentials = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]
        if let colon = credentials.firstIndex(of: ":") {
            user = try Self.decode(credentials[..<colon], part: "user")
            password = try Self.decode(credentials[credentials.index(after: colon)...], part: "password")
        } else {
            user = try Self.decode(credentials, part: "user")
            password = nil
        }
        guard !user.isEmpty else { throw PostgresURLError("user", "must not be empty") }
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw PostgresURLError("host", "an IPv6 address needs a closing ]") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            port = try Self.port(after.isEmpty ? nil : after.hasPrefix(":") ? after.dropFirst() : nil, raw: after)
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = try Self.port(hostPort[hostPort.index(after: colon)...], raw: hostPort[colon...])
        } else {
            host = String(hostPort)
            port = 5432
        }
        guard !host.isEmpty else { throw PostgresURLError("host", "must not be empty") }
        sslMode = .prefer
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = parts.count > 1 ? String(parts[1]) : ""
            switch name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    throw PostgresURLError("sslmode", "must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")), not \(JSONWriter.quote(value))")
                }
                sslMode = mode
            default:
                throw PostgresURLError(name, "unknown parameter (only sslmode is understood)")
            }
        }
    }

    private static func port(_ text: Substring?, raw: Substring) throws(PostgresURLError) -> Int {
        guard let text else {
            if raw.isEmpty { return 5432 }
            throw PostgresURLError("port", "\(JSONWriter.quote(String(raw))) is not :PORT")
        }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw PostgresURLError("port", "must be a number from 1 to 65535, not \(JSONWriter.quote(String(text)))")
        }
        return port
    }

    /// Percent-decodes `text` (UTF-8).
    private static func decode(_ text: Substring, part: String) throws(PostgresURLError) -> String {
        guard let decoded = PercentEncoding.decode(text) else {
            throw PostgresURLError(part, "is not valid percent-encoding (a % must be followed by two hex digits, and the result must be UTF-8)")
        }
        return decoded
    }
}

/// A malformed store URL: which part, and what is wrong with it.
public struct PostgresURLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var part: String
    public var message: String

    public init(_ part: String, _ message: String) {
        self.part = part
        self.message = message
    }

    public var description: String { "\(part): \(message)" }
}
