import Logging
import RelayCore

/// What the ingest listener does with a request, apart from HTTP: finds the source, checks the
/// body limit, runs the pipeline and turns its result or error into an answer, with the log
/// lines and metrics of each outcome. Called on the connection's event loop; the pipeline's
/// completion (on the store's thread) gets the answer.
struct IngestHandling: Sendable {
    let pipeline: IngestPipeline
    let metrics: RelayMetrics
    let logger: Logger
    /// The whole body must arrive within this long of its request head, so a client trickling a
    /// byte at a time cannot keep a request (and its buffer) open for hours.
    let bodyDeadline: Duration

    /// The source named in the path and the routing table of the same config snapshot (so one
    /// request is verified and routed by one version), or the answer refusing it.
    func source(named name: Substring) -> SourceLookup {
        let config = pipeline.currentConfig
        guard let source = config.sources[String(name)] else {
            return .refused(reject(IngestError(.unknownSource, "unknown source \(JSONWriter.quote(String(name)))"), source: String(name), known: false))
        }
        return .found(source, config.routing)
    }

    enum SourceLookup {
        case found(SourceConfig, RoutingTable)
        case refused(IngestAnswer)
    }

    func tooLarge(_ source: SourceConfig) -> IngestAnswer {
        reject(IngestError(.tooLarge, "body exceeds the limit of \(source.maxBodyBytes) bytes for source \(source.name)"), source: source.name)
    }

    func bodyTimedOut(_ source: SourceConfig) -> IngestAnswer {
        reject(IngestError(.timeout, "the request body did not arrive within \(bodyDeadline.components.seconds) s"), source: source.name)
    }

    /// Verifies, normalizes, routes and stores the request's events; `completion` runs once, on
    /// the store's thread after every stored event is durable (or at once when the request is
    /// refused before the store). It should only hand the result to the connection's event
    /// loop: `answer(_:source:)` turns it into the answer there, off the store's writer thread,
    /// which every request's commit waits on.
    func ingest(
        source: SourceConfig, routing: RoutingTable, headers: HeaderList, body: [UInt8],
        completion: @escaping @Sendable (Result<IngestResult, IngestError>) -> Void
    ) {
        pipeline.ingest(source: source, routing: routing, headers: headers, body: body, completion: completion)
    }

    /// The answer to a request `ingest` finished with `result`, with its metrics and log lines.
    func answer(_ result: Result<IngestResult, IngestError>, source: SourceConfig) -> IngestAnswer {
        switch result {
        case .success(let result):
            metrics.ingested(result, source: source)
            return result.rejected.isEmpty ? .json(result.json) : partiallyAccepted(result, source: source)
        case .failure(let error):
            logRejectedEvents(error.rejected, source: source, batchAccepted: false)
            return reject(error, source: source.name)
        }
    }

    /// FastSpring's partial acknowledgement: `202`, `text/plain`, the ids of the events stored
    /// now or before, one per line. FastSpring marks only those processed and sends the others
    /// again, so a malformed event never keeps the good ones of its batch out.
    private func partiallyAccepted(_ result: IngestResult, source: SourceConfig) -> IngestAnswer {
        logRejectedEvents(result.rejected, source: source, batchAccepted: true)
        return IngestAnswer(status: 202, contentType: "text/plain; charset=utf-8", body: result.acknowledgedList)
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

    private func reject(_ error: IngestError, source: String, known: Bool = true) -> IngestAnswer {
        logger.info("ingest rejected", metadata: ["source": "\(source)", "reason": "\(error.reason)", "status": "\(error.httpStatus)"])
        metrics.rejected(source: known ? source : nil, reason: error.reason)
        return .error(error.httpStatus, error.message, retryAfter: error.code == .overloaded || error.code == .unavailable ? 1 : nil)
    }
}
