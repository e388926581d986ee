import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RelayCore
import Synchronization

/// Runa's orders API as its documentation describes it, on `127.0.0.1:0`, for reconciliation
/// and enrichment tests: `GET /order` (`X-Api-Key`; `limit` 1–500, default 100; newest first;
/// `{"items":[…],"pagination":{"cursors":{"after","before"},"page":{"limit"}}}`, the next page
/// with `?after=CURSOR`, an empty `items` at the end) and `GET /order/{id}` (the full order).
/// `failure` makes every request fail the way a real API does.
public final class FakeRunaAPI: Sendable {
    public enum Failure: Sendable, Equatable {
        case none, unavailable, unauthorized, malformed
        case rateLimited(seconds: Int)
        case slow(milliseconds: Int)
    }

    public let apiKey: String
    /// Orders, oldest first (the list answers newest first).
    private let orders = Mutex<[(id: String, json: String)]>([])
    private let failureMode = Mutex<Failure>(.none)
    private let log = Mutex<[String]>([])
    private let server = LoopbackServer(name: "fake Runa API")

    public init(apiKey: String = "runa-k3y") {
        self.apiKey = apiKey
    }

    /// Adds an order; `created` defaults to now.
    public func add(id: String, status: String, description: String = "order", totalPrice: String = "10.00", created: Date = Date()) {
        let stamp = ISO8601DateFormatter().string(from: created)
        let json = status == "PROCESSING"
            ? "{\"id\":\(JSONWriter.quote(id)),\"status\":\"PROCESSING\",\"created_at\":\"\(stamp)\"}"
            : "{\"id\":\(JSONWriter.quote(id)),\"status\":\(JSONWriter.quote(status)),\"created_at\":\"\(stamp)\",\"completed_at\":\"\(stamp)\","
                + "\"description\":\(JSONWriter.quote(description)),\"payment_method\":{\"type\":\"ACCOUNT_BALANCE\",\"currency\":\"USD\"},"
                + "\"currency\":\"USD\",\"total_price\":\(JSONWriter.quote(totalPrice)),\"total_discount\":\"0\","
                + "\"items\":[{\"id\":\"P-\(id)\",\"face_value\":\(JSONWriter.quote(totalPrice)),\"currency\":\"USD\",\"product_code\":\"AMZ-US\"}]}"
        orders.withLock { $0.append((id, json)) }
    }

    public var failure: Failure {
        get { failureMode.withLock { $0 } }
        set { failureMode.withLock { $0 = newValue } }
    }

    /// Every request as `METHOD path?query`.
    public var requests: [String] { log.withLock { $0 } }

    public func start() async throws -> Int {
        try await server.start { [self] request in try await self.answer(request) }
    }

    public func stop() async {
        await server.stop()
    }

    private func delay(milliseconds: Int) async {
        await server.delay(milliseconds: milliseconds)
    }

    private func json(_ status: HTTPResponse.Status, _ text: String, headers extra: HTTPFields = HTTPFields()) -> Response {
        LoopbackServer.json(status, text, headers: extra)
    }

    private func answer(_ request: Request) async throws -> Response {
        let path = request.uri.path
        log.withLock { $0.append("GET \(path)" + (request.uri.query.map { "?" + $0 } ?? "")) }
        switch failure {
        case .unavailable: return json(.serviceUnavailable, #"{"message":"unavailable"}"#)
        case .rateLimited(let seconds):
            var headers = HTTPFields()
            headers[.retryAfter] = String(seconds)
            return json(.tooManyRequests, #"{"message":"rate limited"}"#, headers: headers)
        case .unauthorized: return json(.unauthorized, #"{"message":"invalid api key"}"#)
        case .malformed: return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "<html>")))
        case .slow(let milliseconds): await delay(milliseconds: milliseconds)
        case .none: break
        }
        guard request.headers[HTTPField.Name("x-api-key")!] == apiKey else { return json(.unauthorized, #"{"message":"invalid api key"}"#) }
        if path == "/order" {
            let query = request.uri.queryParameters
            guard let limit = Int(query["limit"].map(String.init) ?? "100"), (1...500).contains(limit) else {
                return json(.badRequest, #"{"message":"limit must be from 1 to 500"}"#)
            }
            let newestFirst = orders.withLock { Array($0.reversed()) }
            var startIndex = 0
            if let after = query["after"].map(String.init) {
                guard let index = newestFirst.firstIndex(where: { "c-" + $0.id == after }) else { return json(.badRequest, #"{"message":"invalid cursor"}"#) }
                startIndex = index + 1
            }
            let page = Array(newestFirst.dropFirst(startIndex).prefix(limit))
            let after = page.last.map { "\"c-\($0.id)\"" } ?? "null"
            let before = page.first.map { "\"c-\($0.id)\"" } ?? "null"
            return json(.ok, "{\"items\":[\(page.map(\.json).joined(separator: ","))],\"pagination\":{\"cursors\":{\"after\":\(after),\"before\":\(before)},\"page\":{\"limit\":\(limit)}}}")
        }
        if path.hasPrefix("/order/") {
            let id = String(path.dropFirst("/order/".count))
            guard let order = orders.withLock({ $0.first { $0.id == id } }) else { return json(.notFound, #"{"message":"order not found"}"#) }
            return json(.ok, order.json)
        }
        return json(.notFound, #"{"message":"not found"}"#)
    }
}
