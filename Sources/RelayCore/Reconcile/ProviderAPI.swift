/// How the relay calls a provider's API (reconciliation): one request, one bounded answer. The
/// server gives it libcurl; RelayCore knows only this.
public protocol ProviderAPIClient: Sendable {
    func send(_ request: ProviderAPIRequest) async -> Result<ProviderAPIResponse, ProviderAPIFailure>
}

public struct ProviderAPIRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var timeoutMillis: Int

    public init(method: String, url: String, headers: [(name: String, value: String)], body: [UInt8] = [], timeoutMillis: Int = 30_000) {
        (self.method, self.url, self.headers, self.body, self.timeoutMillis) = (method, url, headers, body, timeoutMillis)
    }
}

public struct ProviderAPIResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        (self.status, self.headers, self.body) = (status, headers, body)
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// No answer at all: refused, reset, timed out. The message never holds a credential.
public struct ProviderAPIFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// One call to a provider's API with the source's credentials: an error names the call and the
/// status, never a credential.
struct ProviderAPICall {
    let client: any ProviderAPIClient
    let config: ReconcileConfig
    /// For messages: `FastSpring`, `Runa`.
    let provider: String

    func send(method: String, path: String, body: [UInt8] = []) async throws(ReconcileFailure) -> ProviderAPIResponse {
        var headers: [(name: String, value: String)] = [("accept", "application/json"), ("user-agent", "relay")]
        let credentials: String
        switch config.credentials {
        case .basic(let username, let password):
            headers.append(("authorization", "Basic " + Signatures.base64Encode(Array("\(username.value):\(password.value)".utf8))))
            credentials = "username and password"
        case .apiKey(let key):
            headers.append(("x-api-key", key.value))
            credentials = "api_key"
        }
        if !body.isEmpty { headers.append(("content-type", "application/json")) }
        let label = "\(method) \(path.split(separator: "?").first ?? "")"
        switch await client.send(ProviderAPIRequest(method: method, url: config.url + path, headers: headers, body: body, timeoutMillis: config.timeoutMillis)) {
        case .failure(let failure):
            throw ReconcileFailure("\(label): \(failure.message)")
        case .success(let response):
            switch response.status {
            case 200..<300:
                return response
            case 401, 403:
                throw ReconcileFailure("\(label): \(provider) answered \(response.status): check the reconcile \(credentials)")
            case 429:
                let seconds = response.header("retry-after").flatMap { Int64($0.trimmingSpaces()) }
                throw ReconcileFailure("\(label): \(provider) answered 429 (rate limited)" + (seconds.map { ", retry after \($0) s" } ?? ""), retryAfterMillis: seconds.map { $0 * 1000 })
            default:
                throw ReconcileFailure("\(label): \(provider) answered \(response.status)")
            }
        }
    }

    /// The body as JSON, or a failure naming the call.
    func json(_ response: ProviderAPIResponse, _ label: String) throws(ReconcileFailure) -> JSONValue {
        do {
            return try JSONParser.parse(response.body)
        } catch {
            throw ReconcileFailure("\(label): the answer is not JSON (\(error))")
        }
    }
}
