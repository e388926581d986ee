import Foundation
import Mustache

/// How a destination's failed deliveries are retried (SPEC §5 defaults).
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var initialBackoffMillis: Int64
    public var maxBackoffMillis: Int64
    /// A delivery older than this (since the event was received) is dead.
    public var maxAgeMillis: Int64

    public init(maxAttempts: Int = 12, initialBackoffMillis: Int64 = 1000, maxBackoffMillis: Int64 = 3_600_000, maxAgeMillis: Int64 = 72 * 3_600_000) {
        self.maxAttempts = maxAttempts
        self.initialBackoffMillis = initialBackoffMillis
        self.maxBackoffMillis = maxBackoffMillis
        self.maxAgeMillis = maxAgeMillis
    }
}

/// One entry of `destinations`: a downstream service events are forwarded to.
public struct DestinationConfig: Sendable, Equatable {
    public var name: String
    public var url: String
    public var timeoutMillis: Int
    public var connectTimeoutMillis: Int
    public var maxInFlight: Int
    /// Extra request headers; values may come from the environment, so they are kept as secrets.
    public var headers: [(name: String, value: Secret)]
    /// Signs forwarded requests with Standard Webhooks when set.
    public var signingSecret: Secret?
    public var retry: RetryPolicy
    /// Mustache template replacing the forwarded body.
    public var bodyTemplate: String?
    /// Attempts per second at most (live and replayed together), with bursts up to
    /// `maxInFlight`; nil for no limit.
    public var ratePerSecond: Double?
    /// Per-key FIFO (`ordering`); nil: deliveries go out in any order.
    public var ordering: DeliveryOrdering?
    /// Data fetched from the provider's API when a delivery is sent, for the body template
    /// (`enrich`); nil: none.
    public var enrich: Enrichment?

    /// What `enrich` fetches.
    public enum Enrichment: String, Sendable, Equatable {
        /// The Runa order (`GET /order/{id}`) of a Runa event, as `{{order.…}}`.
        case runaOrder = "runa-order"
    }

    public init(
        name: String, url: String, timeoutMillis: Int = 10_000, connectTimeoutMillis: Int = 5_000, maxInFlight: Int = 16,
        headers: [(name: String, value: Secret)] = [], signingSecret: Secret? = nil, retry: RetryPolicy = RetryPolicy(), bodyTemplate: String? = nil
    ) {
        self.name = name
        self.url = url
        self.timeoutMillis = timeoutMillis
        self.connectTimeoutMillis = connectTimeoutMillis
        self.maxInFlight = maxInFlight
        self.headers = headers
        self.signingSecret = signingSecret
        self.retry = retry
        self.bodyTemplate = bodyTemplate
    }

    public static func == (lhs: DestinationConfig, rhs: DestinationConfig) -> Bool {
        lhs.name == rhs.name && lhs.url == rhs.url && lhs.timeoutMillis == rhs.timeoutMillis
            && lhs.connectTimeoutMillis == rhs.connectTimeoutMillis && lhs.maxInFlight == rhs.maxInFlight
            && lhs.headers.elementsEqual(rhs.headers, by: { $0.name == $1.name && $0.value == $1.value })
            && lhs.signingSecret == rhs.signingSecret && lhs.retry == rhs.retry && lhs.bodyTemplate == rhs.bodyTemplate
            && lhs.ratePerSecond == rhs.ratePerSecond && lhs.ordering == rhs.ordering && lhs.enrich == rhs.enrich
    }

    static let allowedKeys: Set<String> = [
        "url", "timeout_ms", "connect_timeout_ms", "max_in_flight", "headers", "signing_secret", "retry", "body_template", "rate_per_s", "ordering", "enrich",
    ]

    static func parse(name: String, _ value: JSONValue, _ reader: inout ConfigReader) -> DestinationConfig? {
        let path = "destinations.\(name)"
        let before = reader.issues.count
        guard reader.object(value, path, allowed: allowedKeys) != nil else { return nil }
        var destination = DestinationConfig(name: name, url: "")
        if let url = reader.string(value["url"], "\(path).url") {
            if let problem = urlProblem(url) { reader.fail("\(path).url", problem) }
            destination.url = url
        } else if value["url"] == nil {
            reader.fail("\(path).url", "is required")
        }
        if let timeout = reader.integer(value["timeout_ms"], "\(path).timeout_ms", minimum: 1) { destination.timeoutMillis = timeout }
        if let timeout = reader.integer(value["connect_timeout_ms"], "\(path).connect_timeout_ms", minimum: 1) { destination.connectTimeoutMillis = timeout }
        destination.connectTimeoutMillis = min(destination.connectTimeoutMillis, destination.timeoutMillis)
        if let limit = reader.integer(value["max_in_flight"], "\(path).max_in_flight", minimum: 1) { destination.maxInFlight = limit }
        if let rate = value["rate_per_s"] {
            if let number = rate.doubleValue, number >= 0.001, number <= 1_000_000 {
                destination.ratePerSecond = number
            } else {
                reader.fail("\(path).rate_per_s", "must be a number of attempts per second from 0.001 to 1000000, not \(JSONWriter.serialize(rate))")
            }
        }
        if let ordering = value["ordering"] {
            destination.ordering = DeliveryOrdering.parse(ordering, "\(path).ordering", &reader)
        }
        if let headers = reader.object(value["headers"], "\(path).headers", allowed: Set(value["headers"]?.objectValue?.map(\.key) ?? [])) {
            for header in headers {
                let headerPath = "\(path).headers.\(header.key)"
                if !isToken(header.key) { reader.fail(headerPath, "is not a valid header name") }
                let lowered = header.key.lowercased()
                if ["content-length", "content-type", "host", "transfer-encoding", "connection"].contains(lowered) || lowered.hasPrefix("webhook-") || lowered.hasPrefix("x-relay-") {
                    reader.fail(headerPath, "is set by the relay and cannot be configured")
                }
                if let text = reader.string(header.value, headerPath), let secret = reader.secretValue(text, headerPath) {
                    if secret.value.contains(where: { $0 == "\r" || $0 == "\n" }) { reader.fail(headerPath, "contains a line break") }
                    destination.headers.append((header.key, secret))
                }
            }
        }
        if let text = reader.string(value["signing_secret"], "\(path).signing_secret"), let secret = reader.secretValue(text, "\(path).signing_secret") {
            if Signatures.standardWebhooksKey(secret.value) == nil {
                reader.fail("\(path).signing_secret", "the secret from \(secret.origin) is not a Standard Webhooks secret (whsec_ followed by base64)")
            }
            destination.signingSecret = secret
        }
        if let retry = value["retry"], reader.object(retry, "\(path).retry", allowed: ["max_attempts", "initial_backoff_ms", "max_backoff_ms", "max_age"]) != nil {
            if let attempts = reader.integer(retry["max_attempts"], "\(path).retry.max_attempts", minimum: 1) { destination.retry.maxAttempts = attempts }
            if let initial = reader.integer(retry["initial_backoff_ms"], "\(path).retry.initial_backoff_ms", minimum: 1) { destination.retry.initialBackoffMillis = Int64(initial) }
            if let cap = reader.integer(retry["max_backoff_ms"], "\(path).retry.max_backoff_ms", minimum: 1) { destination.retry.maxBackoffMillis = Int64(cap) }
            if let age = reader.duration(retry["max_age"], "\(path).retry.max_age") { destination.retry.maxAgeMillis = age }
            if destination.retry.maxBackoffMillis < destination.retry.initialBackoffMillis {
                reader.fail("\(path).retry.max_backoff_ms", "must not be less than initial_backoff_ms (\(destination.retry.initialBackoffMillis))")
            }
        }
        if let text = reader.string(value["enrich"], "\(path).enrich") {
            if let enrichment = Enrichment(rawValue: text) {
                destination.enrich = enrichment
                if value["body_template"] == nil { reader.fail("\(path).enrich", "needs a body_template: the fetched order is only seen through {{order.…}}") }
            } else {
                reader.fail("\(path).enrich", "must be \"runa-order\", not \(JSONWriter.quote(text))")
            }
        }
        if let template = reader.string(value["body_template"], "\(path).body_template") {
            do {
                _ = try BodyTemplate(template)
                destination.bodyTemplate = template
            } catch let error as BodyTemplate.LimitError {
                reader.fail("\(path).body_template", "\(error)")
            } catch let error as MustacheTemplate.ParserError {
                reader.fail("\(path).body_template", "is not a valid Mustache template: \(error.error) at column \(error.context.columnNumber)")
            } catch {
                reader.fail("\(path).body_template", "is not a valid Mustache template: \(error)")
            }
        }
        return reader.issues.count == before ? destination : nil
    }

    static func urlProblem(_ text: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            return "\(JSONWriter.quote(text)) is not a valid URL"
        }
        guard scheme == "http" || scheme == "https" else { return "must be an http or https URL, not \(scheme)" }
        guard let host = components.host, !host.isEmpty else { return "\(JSONWriter.quote(text)) has no host" }
        if components.user != nil || components.password != nil { return "must not carry credentials in the URL (use headers)" }
        return nil
    }

    static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }
}
