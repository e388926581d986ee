import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A scriptable downstream on `127.0.0.1:0` for forwarding tests:
/// `/status/{code}` answers that status, `/retry-after/{seconds}` answers 503 with Retry-After,
/// `/slow/{ms}` answers 204 after a delay, `/big` answers 200 with a 1 MiB body and 100 headers,
/// anything else 204. Every request is counted and its headers and body kept.
public final class TestDownstream: Sendable {
    public struct Received: Sendable {
        public var path: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    private let received = Mutex<[Received]>([])
    private let port = Mutex<Int?>(nil)
    private let task = Mutex<Task<Void, any Error>?>(nil)

    public init() {}

    public var requests: [Received] { received.withLock { $0 } }

    public func start() async throws -> Int {
        let router = Router()
        router.on("**", method: .post) { [self] request, context -> Response in
            var body: [UInt8] = []
            for try await chunk in request.body { body.append(contentsOf: chunk.readableBytesView) }
            let path = request.uri.path
            received.withLock {
                $0.append(Received(path: path, headers: request.headers.map { ($0.name.canonicalName, $0.value) }, body: body))
            }
            let parts = path.split(separator: "/")
            switch parts.first {
            case "status":
                return Response(status: HTTPResponse.Status(code: parts.count > 1 ? Int(parts[1]) ?? 500 : 500))
            case "retry-after":
                var headers = HTTPFields()
                headers[.retryAfter] = parts.count > 1 ? String(parts[1]) : "1"
                return Response(status: .serviceUnavailable, headers: headers)
            case "slow":
                try? await Task.sleep(for: .milliseconds(parts.count > 1 ? Int(parts[1]) ?? 1000 : 1000))
                return Response(status: .noContent)
            case "big":
                var headers = HTTPFields()
                for i in 0..<100 { headers[HTTPField.Name("x-extra-\(i)")!] = String(repeating: "v", count: 50) }
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "b"), count: 1 << 20)))
            default:
                return Response(status: .noContent)
            }
        }
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { [self] channel in self.port.withLock { $0 = channel.localAddress?.port } },
            logger: Logger(label: "test-downstream", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        task.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        for _ in 0..<500 {
            if let port = port.withLock({ $0 }) { return port }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestHTTPClient.Failure(description: "test downstream did not start")
    }

    public func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        _ = try? await running?.value
    }
}
