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
