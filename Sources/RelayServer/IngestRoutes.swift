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
            return reject(tooLarge(source), source: name)
        }
        // Read the body with a limit: never buffer more than the source allows.
        var body: [UInt8] = []
        let deadline = ContinuousClock.now + bodyDeadline
        do {
            for try await chunk in request.body {
                guard body.count + chunk.readableBytes <= source.maxBodyBytes else {
                    return reject(tooLarge(source), source: name)
                }
                guard ContinuousClock.now < deadline else {
                    return reject(IngestError(.timeout, "the request body did not arrive within \(bodyDeadline.components.seconds) s"), source: name)
                }
                body.append(contentsOf: chunk.readableBytesView)
            }
        } catch {
            return reject(IngestError(.badRequest, "could not read the request body"), source: name)
        }
        var headers = HeaderList()
        for field in request.headers {
            headers.append(name: field.name.canonicalName, value: field.value)
        }
        do {
            let result = try await pipeline.ingest(source: source, routing: config.routing, headers: headers, body: body)
            metrics.ingested(result, source: source)
            guard result.rejected.isEmpty else { return partiallyAccepted(result, source: source) }
            return JSONResponse.ok(result.json)
        } catch {
            logRejectedEvents(error.rejected, source: source, batchAccepted: false)
            return reject(error, source: name)
        }
    }

    /// FastSpring's partial acknowledgement: `202`, `text/plain`, the ids of the events stored
    /// now or before, one per line. FastSpring marks only those processed and sends the others
    /// again, so a malformed event never keeps the good ones of its batch out.
    private func partiallyAccepted(_ result: IngestResult, source: SourceConfig) -> Response {
        logRejectedEvents(result.rejected, source: source, batchAccepted: true)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .accepted, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: result.acknowledgedList)))
    }

    private func logRejectedEvents(_ events: [RejectedEvent], source: SourceConfig, batchAccepted: Bool) {
        guard !events.isEmpty else { return }
        for event in events {
            logger.warning("ingest event rejected", metadata: [
                "source": "\(source.name)", "index": "\(event.index)", "event_id": "\(event.providerEventID ?? "")", "reason": "\(event.reason)",
                "batch": "\(batchAccepted ? "rest stored" : "refused")",
            ])
        }
        metrics.rejectedEvents(events, source: source, batchAccepted: batchAccepted)
    }

    private func tooLarge(_ source: SourceConfig) -> IngestError {
        IngestError(.tooLarge, "body exceeds the limit of \(source.maxBodyBytes) bytes for source \(source.name)")
    }

    private func reject(_ error: IngestError, source: String, known: Bool = true) -> Response {
        logger.info("ingest rejected", metadata: ["source": "\(source)", "reason": "\(error.reason)", "status": "\(error.httpStatus)"])
        metrics.rejected(source: known ? source : nil, reason: error.reason)
        let status = HTTPResponse.Status(code: error.httpStatus)
        // An answer given before the body was read to its end also closes the connection
        // (`CloseAfterResponseHandler`).
        return JSONResponse.error(status, error.message, retryAfter: error.code == .overloaded || error.code == .unavailable ? 1 : nil)
    }
}
