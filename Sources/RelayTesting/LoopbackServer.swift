import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A Hummingbird server on `127.0.0.1:0` for the providers' API fakes: every GET and POST goes
/// to one handler. `stop()` says so to slow handlers (`stopped`) before it shuts the server down.
final class LoopbackServer: Sendable {
    private let port = Mutex<Int?>(nil)
    private let run = GracefulRun()
    private let stopping = Atomic<Bool>(false)
    let name: String

    init(name: String) {
        self.name = name
    }

    var stopped: Bool { stopping.load(ordering: .relaxed) }

    /// Starts answering with `handler` and returns the port.
    func start(_ handler: @escaping @Sendable (Request) async throws -> Response) async throws -> Int {
        let router = Router()
        router.on("**", method: .get) { request, _ in try await handler(request) }
        router.on("**", method: .post) { request, _ in try await handler(request) }
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { [self] channel in self.port.withLock { $0 = channel.localAddress?.port } },
            logger: Logger(label: name, factory: { _ in SwiftLogNoOpLogHandler() })
        )
        run.start(app, logger: app.logger)
        for _ in 0..<500 {
            if let port = port.withLock({ $0 }) { return port }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestHTTPClient.Failure(description: "\(name) did not start")
    }

    func stop() async {
        stopping.store(true, ordering: .relaxed)
        await run.stop()
    }

    /// Sleeps without throwing, ending early once stopping.
    func delay(milliseconds: Int) async {
        await sleepUnlessStopped(milliseconds: milliseconds) { stopped }
    }

    static func json(_ status: HTTPResponse.Status, _ text: String, headers extra: HTTPFields = HTTPFields()) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
