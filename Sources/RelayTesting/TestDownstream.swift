import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A scriptable downstream on `127.0.0.1:0` for forwarding tests:
/// `/status/{code}` answers that status, `/retry-after/{seconds}` answers 503 with Retry-After,
/// `/slow/{ms}` answers 204 after a delay, `/big` answers 200 with a 1 MiB body and 100 headers,
/// `/flaky/{n}` answers 503 to the first n requests of each `webhook-id` and then 204,
/// `/chaos/{fail%}/{slow%}/{ms}` answers 503 to fail% of requests at random and delays slow% of
/// them by up to ms, anything else 204. Every request is counted and its headers, body, arrival
/// and answer time and status kept.
public final class TestDownstream: Sendable {
    public struct Received: Sendable {
        public var path: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        public var time: ContinuousClock.Instant
        /// When the answer was ready (nil while the request is still being answered) and its status.
        public var answered: ContinuousClock.Instant?
        public var status: Int?

        /// The value of header `name` (any case; names are kept in their canonical lower case).
        public func header(_ name: String) -> String? {
            let wanted = name.lowercased()
            return headers.first { $0.name == wanted }?.value
        }
    }

    private let received = Mutex<[Received]>([])
    /// Requests so far per path and `webhook-id` (what `/flaky` counts), kept as they arrive:
    /// counting by scanning every earlier request made a busy downstream quadratic.
    private let seen = Mutex<[String: Int]>([:])
    private let port = Mutex<Int?>(nil)
    private let run = GracefulRun()
    private let stopping = Atomic<Bool>(false)

    public init() {}

    public var requests: [Received] { received.withLock { $0 } }

    /// Requests received at `path`.
    public func requests(at path: String) -> [Received] { requests.filter { $0.path == path } }

    /// Waits (bounded) until `condition` holds for the requests received so far.
    public func wait(timeout: Duration = .seconds(10), until condition: ([Received]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(requests) { return true }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }  // cancelled: no spinning
        }
        return condition(requests)
    }

    /// Starts listening on `127.0.0.1:port` (0 = any free port) and returns the port.
    public func start(port requested: Int = 0) async throws -> Int {
        if requested != 0 { releaseReservedPort(requested) }
        let router = Router()
        router.on("**", method: .post) { [self] request, context -> Response in
            var body: [UInt8] = []
            for try await chunk in request.body { body.append(contentsOf: chunk.readableBytesView) }
            let path = request.uri.path
            let webhookID = request.headers[HTTPField.Name("webhook-id")!] ?? ""
            let earlier = seen.withLock { counts in
                defer { counts[path + "\u{0}" + webhookID, default: 0] += 1 }
                return counts[path + "\u{0}" + webhookID] ?? 0
            }
            let index = received.withLock { list in
                list.append(Received(path: path, headers: request.headers.map { ($0.name.canonicalName, $0.value) }, body: body, time: .now))
                return list.count - 1
            }
            let response = await answer(path.split(separator: "/"), earlier: earlier)
            received.withLock { list in
                list[index].answered = .now
                list[index].status = response.status.code
            }
            return response
        }
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: requested), serverName: nil),
            onServerRunning: { [self] channel in self.port.withLock { $0 = channel.localAddress?.port } },
            logger: Logger(label: "test-downstream", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        run.start(app, logger: app.logger)
        for _ in 0..<500 {
            if let port = port.withLock({ $0 }) { return port }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestHTTPClient.Failure(description: "test downstream did not start")
    }

    /// What the path asks for; `earlier` is how many requests with this path and `webhook-id` came before.
    private func answer(_ parts: [Substring], earlier: Int) async -> Response {
        switch parts.first {
        case "status":
            return Response(status: HTTPResponse.Status(code: parts.count > 1 ? Int(parts[1]) ?? 500 : 500))
        case "retry-after":
            var headers = HTTPFields()
            headers[.retryAfter] = parts.count > 1 ? String(parts[1]) : "1"
            return Response(status: .serviceUnavailable, headers: headers)
        case "slow":
            await delay(milliseconds: parts.count > 1 ? Int(parts[1]) ?? 1000 : 1000)
            return Response(status: .noContent)
        case "chaos":
            let number = { (index: Int) in parts.count > index ? max(0, Int(parts[index]) ?? 0) : 0 }
            let (failPercent, slowPercent, slowest) = (number(1), number(2), number(3))
            if Int.random(in: 0..<100) < slowPercent, slowest > 0 { await delay(milliseconds: Int.random(in: 1...slowest)) }
            return Response(status: Int.random(in: 0..<100) < failPercent ? .serviceUnavailable : .noContent)
        case "flaky":
            let failures = parts.count > 1 ? Int(parts[1]) ?? 1 : 1
            return Response(status: earlier < failures ? .serviceUnavailable : .noContent)
        case "big":
            var headers = HTTPFields()
            for i in 0..<100 { headers[HTTPField.Name("x-extra-\(i)")!] = String(repeating: "v", count: 50) }
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "b"), count: 1 << 20)))
        default:
            return Response(status: .noContent)
        }
    }

    private func delay(milliseconds: Int) async {
        await sleepUnlessStopped(milliseconds: milliseconds) { stopping.load(ordering: .relaxed) }
    }

    public func stop() async {
        stopping.store(true, ordering: .relaxed)
        await run.stop()
    }
}
