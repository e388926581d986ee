import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RelayCore
import Synchronization

/// FastSpring's events API as its documentation describes it, on `127.0.0.1:0`, for
/// reconciliation tests (the real one cannot be reached from here):
/// `GET /events/unprocessed` with `begin`/`end` (unix ms) or `days`, HTTP Basic auth, up to 25
/// events per answer with `"more": true` when there are others (and `page` to page through), the
/// documented `{"action":"events.get","result":"error","error":{…}}` for a bad window; and
/// `POST /events/{id}` with `{"processed": true}` to mark one processed. `failure` makes every
/// request fail the way a real API does (down, slow, rate limited, unauthorized, garbage).
public final class FakeFastSpringAPI: Sendable {
    public enum Failure: Sendable, Equatable {
        case none
        case unavailable            // 503
        case rateLimited(seconds: Int)  // 429 with Retry-After
        case unauthorized           // 401, as for wrong credentials
        case malformed              // 200 with a body that is not JSON
        case slow(milliseconds: Int)
        /// Listing works; marking answers 500 (the relay stored the events but could not mark them).
        case marksFail
        /// Listing works; marking hangs this long (a window to `kill -9` the relay in).
        case marksHang(milliseconds: Int)
    }

    public struct StoredEvent: Sendable {
        public var id: String
        public var json: String
        public var created: Int64
        public var processed: Bool
    }

    public let username: String
    public let password: String
    private let events = Mutex<[StoredEvent]>([])
    private let failureMode = Mutex<Failure>(.none)
    private let log = Mutex<[String]>([])
    private let server = LoopbackServer(name: "fake FastSpring API")

    public init(username: String = "api-user", password: String = "api-p4ss") {
        (self.username, self.password) = (username, password)
    }

    /// Adds an event the provider holds, unprocessed (its webhook never got through).
    public func add(id: String, type: String = "order.completed", orderID: String? = nil, created: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        let order = orderID ?? "ord-\(id)"
        let json = "{\"id\":\(JSONWriter.quote(id)),\"processed\":false,\"created\":\(created),\"type\":\(JSONWriter.quote(type)),\"live\":true,"
            + "\"data\":{\"id\":\(JSONWriter.quote(order)),\"completed\":true,\"items\":[{\"product\":\"cloud-s\"}]},\"event\":\(JSONWriter.quote(id))}"
        events.withLock { $0.append(StoredEvent(id: id, json: json, created: created, processed: false)) }
    }

    public var failure: Failure {
        get { failureMode.withLock { $0 } }
        set { failureMode.withLock { $0 = newValue } }
    }

    /// Ids marked processed so far.
    public var processed: [String] { events.withLock { $0.filter(\.processed).map(\.id) } }
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
        var body: [UInt8] = []
        for try await chunk in request.body { body.append(contentsOf: chunk.readableBytesView) }
        let path = request.uri.path
        log.withLock { $0.append("\(request.method.rawValue) \(path)" + (request.uri.query.map { "?" + $0 } ?? "")) }
        let expected = "Basic " + Signatures.base64Encode(Array("\(username):\(password)".utf8))
        let mode = failure
        switch mode {
        case .unavailable: return json(.serviceUnavailable, #"{"error":"unavailable"}"#)
        case .rateLimited(let seconds):
            var headers = HTTPFields()
            headers[.retryAfter] = String(seconds)
            return json(.tooManyRequests, #"{"error":"rate limited"}"#, headers: headers)
        case .unauthorized: return json(.unauthorized, #"{"error":"unauthorized"}"#)
        case .malformed: return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "<html>not json")))
        case .slow(let milliseconds): await delay(milliseconds: milliseconds)
        default: break
        }
        guard request.headers[.authorization] == expected else { return json(.unauthorized, #"{"error":"unauthorized"}"#) }
        if request.method == .get, path == "/events/unprocessed" {
            return list(request.uri.queryParameters)
        }
        if request.method == .post, path.hasPrefix("/events/") {
            switch mode {
            case .marksFail: return json(.internalServerError, #"{"error":"internal"}"#)
            case .marksHang(let milliseconds): await delay(milliseconds: milliseconds)
            default: break
            }
            let id = String(path.dropFirst("/events/".count)).removingPercentEncoding ?? ""
            guard (try? JSONParser.parse(body))?["processed"]?.boolValue == true else {
                return json(.badRequest, #"{"action":"event.update","result":"error","error":{"processed":"processed required"}}"#)
            }
            let found = events.withLock { list in
                guard let index = list.firstIndex(where: { $0.id == id }) else { return false }
                list[index].processed = true
                return true
            }
            return found ? json(.ok, #"{"action":"event.update","result":"success"}"#) : json(.notFound, #"{"action":"event.update","result":"error","error":{"id":"not found"}}"#)
        }
        return json(.notFound, #"{"error":"not found"}"#)
    }

    private func list(_ query: Parameters) -> Response {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let begin: Int64, end: Int64
        if let days = query["days"] {
            guard let n = Int64(days) else { return json(.badRequest, #"{"action":"events.get","result":"error","error":{"days":"Can not parse days."}}"#) }
            (begin, end) = (now - n * 86_400_000, now)
        } else if let text = query["begin"] {
            guard let b = Int64(text) else { return json(.badRequest, #"{"action":"events.get","result":"error","error":{"begin":"Can not parse begin"}}"#) }
            begin = b
            end = query["end"].flatMap { Int64($0) } ?? now
        } else {
            return json(.badRequest, #"{"action":"events.get","result":"error","error":{"begin":"Begin required."}}"#)
        }
        guard begin < end else { return json(.badRequest, #"{"action":"events.get","result":"error","error":{"begin":"Begin must be less than end."}}"#) }
        guard begin >= now - 30 * 86_400_000 - 60_000 else {
            return json(.badRequest, #"{"action":"events.get","result":"error","error":{"begin":"Begin must be after 30 days ago."}}"#)
        }
        let page = max(1, query["page"].flatMap { Int($0) } ?? 1)
        let matching = events.withLock { $0.filter { !$0.processed && $0.created >= begin && $0.created <= end } }
        let slice = matching.dropFirst((page - 1) * 25).prefix(25)
        let more = matching.count > page * 25
        let text = "{\"action\":\"events.get\",\"result\":\"success\",\"page\":\(page),\"limit\":25,\"nextPage\":\(more ? String(page + 1) : "null"),"
            + "\"total\":\(matching.count),\"more\":\(more),\"events\":[\(slice.map(\.json).joined(separator: ","))]}"
        return json(.ok, text)
    }
}
