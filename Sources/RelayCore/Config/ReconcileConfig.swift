/// A source's `reconcile` block: how the relay asks the provider's own API for events it missed
/// (FastSpring: `GET /events/unprocessed`, HTTP Basic auth; Runa: `GET /order`, `X-Api-Key`).
public struct ReconcileConfig: Sendable, Equatable {
    public enum Credentials: Sendable, Equatable {
        /// FastSpring: the API username and password.
        case basic(username: Secret, password: Secret)
        /// Runa: the API key.
        case apiKey(Secret)
    }

    /// The API's base URL, without a trailing `/` (e.g. `https://api.fastspring.com`).
    public var url: String
    public var credentials: Credentials
    /// Time between passes. Default 15 minutes.
    public var everyMillis: Int64
    /// How far back a pass looks. Default 3 days; at most 30 (FastSpring keeps events for 30).
    public var lookbackMillis: Int64
    /// The time one API call may take, connect included. Default 30 s.
    public var timeoutMillis: Int = 30_000

    public static let defaultEvery: Int64 = 15 * 60_000
    public static let defaultLookback: Int64 = 3 * 86_400_000
    /// FastSpring's events API answers for the last 30 days only.
    public static let maximumLookback: Int64 = 30 * 86_400_000

    /// A pass's `since` (`--since`, `POST /admin/reconcile`): a duration up to the 30 days a
    /// pass may look back; otherwise the problem, to follow the option's name.
    public static func since(_ text: String) -> Result<Int64, ReconcileFailure> {
        guard let millis = Duration.parseMilliseconds(text) else { return .failure(ReconcileFailure("must be a duration such as 24h or 3d, not \(JSONWriter.quote(text))")) }
        guard millis <= maximumLookback else { return .failure(ReconcileFailure("at most 30d (FastSpring keeps events for 30 days)")) }
        return .success(millis)
    }

    public init(url: String, credentials: Credentials, everyMillis: Int64 = ReconcileConfig.defaultEvery, lookbackMillis: Int64 = ReconcileConfig.defaultLookback) {
        (self.url, self.credentials, self.everyMillis, self.lookbackMillis) = (url, credentials, everyMillis, lookbackMillis)
    }

    static func parse(_ value: JSONValue, _ path: String, provider: ProviderKind, _ reader: inout ConfigReader) -> ReconcileConfig? {
        let before = reader.issues.count
        let credentialKeys: [String]
        switch provider {
        case .fastspring: credentialKeys = ["username", "password"]
        case .runa: credentialKeys = ["api_key"]
        case .generic:
            reader.fail(path, "only fastspring and runa sources can reconcile (a generic provider has no known API)")
            return nil
        }
        guard reader.object(value, path, allowed: Set(["url", "every", "lookback", "timeout_ms"] + credentialKeys)) != nil else { return nil }
        var url = ""
        if let text = reader.string(value["url"], "\(path).url") {
            if let problem = DestinationConfig.urlProblem(text) { reader.fail("\(path).url", problem) }
            url = text.hasSuffix("/") ? String(text.dropLast()) : text
        } else if value["url"] == nil {
            reader.fail("\(path).url", "is required (e.g. \(provider == .runa ? "https://api.runa.io/v2" : "https://api.fastspring.com"))")
        }
        func secret(_ key: String, _ reader: inout ConfigReader) -> Secret? {
            if let text = reader.string(value[key], "\(path).\(key)") { return reader.secretValue(text, "\(path).\(key)") }
            if value[key] == nil { reader.fail("\(path).\(key)", "is required (the API credential; use env:NAME)") }
            return nil
        }
        let secrets = credentialKeys.map { secret($0, &reader) }
        let every = reader.duration(value["every"], "\(path).every") ?? defaultEvery
        if every < 1_000 { reader.fail("\(path).every", "must be at least 1s") }
        let lookback = reader.duration(value["lookback"], "\(path).lookback") ?? defaultLookback
        if lookback > maximumLookback { reader.fail("\(path).lookback", "must be at most 30d" + (provider == .fastspring ? " (FastSpring keeps events for 30 days)" : "")) }
        let timeout = reader.integer(value["timeout_ms"], "\(path).timeout_ms", minimum: 100) ?? 30_000
        guard reader.issues.count == before else { return nil }
        let credentials: Credentials
        switch (provider, secrets.first ?? nil, secrets.last ?? nil) {
        case (.fastspring, let username?, let password?) where secrets.count == 2: credentials = .basic(username: username, password: password)
        case (.runa, let key?, _): credentials = .apiKey(key)
        default: return nil
        }
        var config = ReconcileConfig(url: url, credentials: credentials, everyMillis: every, lookbackMillis: lookback)
        config.timeoutMillis = timeout
        return config
    }
}
