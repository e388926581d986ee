/// One HTTP request through the transport: a delivery (a POST), or the CLI's call to the
/// admin API.
public struct OutboundRequest: Sendable {
    public enum Method: String, Sendable {
        case get = "GET"
        case post = "POST"
    }

    public var method: Method
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Total time for the attempt, connect included.
    public var timeoutMillis: Int
    public var connectTimeoutMillis: Int
    /// The response body bytes kept; the rest is read and dropped.
    public var maxResponseBody: Int

    public init(
        method: Method = .post, url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = [], timeoutMillis: Int = 10_000,
        connectTimeoutMillis: Int = 5_000, maxResponseBody: Int = TransportResponse.maxBody
    ) {
        self.method = method
        self.maxResponseBody = maxResponseBody
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMillis = timeoutMillis
        self.connectTimeoutMillis = connectTimeoutMillis
    }
}

/// What a destination answered, captured with bounds: at most `maxHeaders` headers and the
/// first bytes of the body (a delivery keeps `maxBody`), however large the real response.
public struct TransportResponse: Sendable {
    public static let maxBody = 4096
    public static let maxHeaders = 64

    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var durationMillis: Int

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], durationMillis: Int = 0) {
        self.status = status
        self.headers = headers
        self.body = body
        self.durationMillis = durationMillis
    }

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// The raw `Retry-After` value, if any.
    public var retryAfter: String? { header("retry-after") }
}

/// Why no response was received.
public struct TransportFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Could not connect (refused, unreachable, DNS).
        case connect
        /// The attempt's time ran out.
        case timeout
        /// The request was cancelled (task cancelled or engine stopped).
        case cancelled
        /// Anything else: reset connection, empty reply, TLS failure…
        case other
    }

    public var kind: Kind
    public var message: String
    /// The libcurl error code, 0 if none.
    public var code: Int32
    public var durationMillis: Int

    public init(kind: Kind, message: String, code: Int32 = 0, durationMillis: Int = 0) {
        self.kind = kind
        self.message = message
        self.code = code
        self.durationMillis = durationMillis
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}

/// Sends forwarded requests. `CurlEngine` in production; tests of pure policy use a fake.
public protocol HTTPTransport: Sendable {
    func send(_ request: OutboundRequest) async -> Result<TransportResponse, TransportFailure>
    /// Starts `request` and returns at once; `completion` is called exactly once with its
    /// result, on the transport's own thread (it must not block). The returned handle cuts the
    /// request short (its result is then a `.cancelled` failure, unless it finished first).
    func start(_ request: OutboundRequest, completion: @escaping @Sendable (Result<TransportResponse, TransportFailure>) -> Void) -> TransferCancel
}

extension HTTPTransport {
    /// In a task of its own, through `send`.
    public func start(_ request: OutboundRequest, completion: @escaping @Sendable (Result<TransportResponse, TransportFailure>) -> Void) -> TransferCancel {
        let task = Task { completion(await send(request)) }
        return TransferCancel { task.cancel() }
    }
}

/// Cuts a started transfer short (`HTTPTransport.start`); a transfer that already finished is
/// left alone.
public struct TransferCancel: Sendable {
    private let action: @Sendable () -> Void

    public init(_ action: @escaping @Sendable () -> Void) {
        self.action = action
    }

    public func callAsFunction() { action() }
}

