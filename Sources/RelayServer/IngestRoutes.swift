import Hummingbird
import Logging
import NIOCore
import RelayCore

/// The public listener: `POST /webhooks/{source}` and `GET /healthz`.
struct IngestRoutes {
    let pipeline: IngestPipeline
    let metrics: RelayMetrics
    let logger: Logger
    /// The whole body must arrive within this long of the handler starting to read it, so a
    /// client trickling a byte at a time cannot keep a request (and its buffer) open for hours.
    /// Checked as each part of the body arrives; a body that stops arriving altogether is cut
    /// by the listener's idle timeout.
    let bodyDeadline: Duration

    func register(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in JSONResponse.ok("{\"status\":\"ok\"}") }
        router.post("/webhooks/:source") { request, context in
            await handle(request, context: context)
        }
    }

    func handle(_ request: Request, context: BasicRequestContext) async -> Response {
        let name = context.parameters.get("source") ?? ""
        // One config snapshot for the whole request: verified and routed by the same version.
        let config = pipeline.currentConfig
        guard let source = config.sources[name] else {
            return reject(IngestError(.unknownSource, "unknown source \(JSONWriter.quote(name))"), source: name, known: false)
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > source.maxBodyBytes {
            return reject(tooLarge(source), source: name, bodyRead: false)
        }
        // Read the body with a limit: never buffer more than the source allows.
        var body: [UInt8] = []
        let deadline = ContinuousClock.now + bodyDeadline
        do {
            for try await chunk in request.body {
                guard body.count + chunk.readableBytes <= source.maxBodyBytes else {
                    return reject(tooLarge(source), source: name, bodyRead: false)
                }
                guard ContinuousClock.now < deadline else {
                    return reject(IngestError(.timeout, "the request body did not arrive within \(bodyDeadline.components.seconds) s"), source: name, bodyRead: false)
                }
                body.append(contentsOf: chunk.readableBytesView)
            }
        } catch {
            return reject(IngestError(.badRequest, "could not read the request body"), source: name, bodyRead: false)
        }
        var headers = HeaderList()
        for field in request.headers {
            headers.append(name: field.name.canonicalName, value: field.value)
        }
        do {
            let result = try await pipeline.ingest(source: source, routing: config.routing, headers: headers, body: body)
            metrics.ingested(result, source: source)
            return JSONResponse.ok(result.json)
        } catch {
            return reject(error, source: name)
        }
    }

    private func tooLarge(_ source: SourceConfig) -> IngestError {
        IngestError(.tooLarge, "body exceeds the limit of \(source.maxBodyBytes) bytes for source \(source.name)")
    }

    private func reject(_ error: IngestError, source: String, known: Bool = true, bodyRead: Bool = true) -> Response {
        logger.info("ingest rejected", metadata: ["source": "\(source)", "reason": "\(error.reason)", "status": "\(error.httpStatus)"])
        metrics.rejected(source: known ? source : nil, reason: error.reason)
        let status = HTTPResponse.Status(code: error.httpStatus)
        var response = JSONResponse.error(status, error.message, retryAfter: error.code == .overloaded || error.code == .unavailable ? 1 : nil)
        // The body was not read to its end: close rather than read and discard the rest
        // (`CloseAfterResponseHandler`), which a trickling client could drag out forever.
        if !bodyRead { response.headers[.connection] = "close" }
        return response
    }
}
