/// Why an ingest request was refused, with the HTTP status it maps to. Messages name the
/// problem (a missing header, a stale timestamp) but never a secret or an expected signature.
public struct IngestError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        enum Base: Hashable, Sendable { case unknownSource, unauthorized, tooLarge, badRequest, timeout, unavailable, overloaded }
        let base: Base

        /// No source of that name in routes.json → 404.
        public static let unknownSource = Code(base: .unknownSource)
        /// Signature missing or invalid, or timestamp outside tolerance → 401.
        public static let unauthorized = Code(base: .unauthorized)
        /// Body over the source's `max_body_bytes` → 413.
        public static let tooLarge = Code(base: .tooLarge)
        /// A body the provider adapter cannot parse → 400.
        public static let badRequest = Code(base: .badRequest)
        /// The body did not arrive within the time allowed (a trickling client) → 408.
        public static let timeout = Code(base: .timeout)
        /// The journal cannot write → 503.
        public static let unavailable = Code(base: .unavailable)
        /// The journal's write queue is full → 503 with Retry-After.
        public static let overloaded = Code(base: .overloaded)
    }

    public var code: Code
    public var message: String
    /// A batch refused because none of its events could be accepted: each of them, and why.
    public var rejected: [RejectedEvent] = []

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The HTTP status this error is answered with.
    public var httpStatus: Int {
        switch code.base {
        case .unknownSource: 404
        case .unauthorized: 401
        case .tooLarge: 413
        case .badRequest: 400
        case .timeout: 408
        case .unavailable, .overloaded: 503
        }
    }

    /// A short label for metrics and logs (`signature`, `too_large`, …).
    public var reason: String {
        switch code.base {
        case .unknownSource: "unknown_source"
        case .unauthorized: "unauthorized"
        case .tooLarge: "too_large"
        case .badRequest: "bad_request"
        case .timeout: "body_timeout"
        case .unavailable: "store_unavailable"
        case .overloaded: "store_overloaded"
        }
    }

    public var description: String { message }
}
