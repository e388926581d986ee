import Hummingbird
import Logging
import NIOCore
import RelayAdminAPI
import RelayCore

/// The admin listener (never the public one). It sees the stores and the engine through their
/// ports and the rest through a few functions, never the server itself.
struct AdminRoutes {
    /// A replay the store could not save was not started: the caller may ask again.
    static func replayNotSaved(_ error: any Error) -> Response {
        JSONResponse.error(.serviceUnavailable, "the store could not save the replay, so nothing was sent: \(error); retry later", retryAfter: 1)
    }

    /// A path parameter, percent-decoded (a client may encode the ":" of EVENT_ID:DESTINATION,
    /// or any character of a destination's name); as given if it is not valid percent-encoding.
    static func pathParameter(_ context: BasicRequestContext, _ name: String) -> String {
        let raw = context.parameters.get(name) ?? ""
        return raw.contains("%") ? PercentEncoding.decode(raw) ?? raw : raw
    }

    /// The delivery a `/admin/deliveries/{id}/…` route names, or the answer when it names none.
    enum NamedDelivery {
        case found((eventID: String, destination: String, detail: EventDetail))
        case answer(Response)
    }

    /// Looks up delivery `id` (EVENT_ID:DESTINATION): 400 when it is not of that form, 404
    /// when the event or its delivery to that destination is unknown.
    static func delivery(_ id: String, in events: any EventStore) async throws -> NamedDelivery {
        guard let colon = id.firstIndex(of: ":") else {
            return .answer(JSONResponse.error(.badRequest, "a delivery id is EVENT_ID:DESTINATION, not \(JSONWriter.quote(id))"))
        }
        let eventID = String(id[..<colon])
        let destination = String(id[id.index(after: colon)...])
        guard let detail = try await events.detail(id: eventID) else {
            return .answer(JSONResponse.error(.notFound, "no event \(JSONWriter.quote(eventID))"))
        }
        guard detail.summary.deliveries.contains(where: { $0.destination == destination }) else {
            return .answer(JSONResponse.error(.notFound, "event \(JSONWriter.quote(eventID)) has no delivery to \(JSONWriter.quote(destination))"))
        }
        return .found((eventID, destination, detail))
    }

    /// The `limit` query parameter: 1…1000, `default` when absent.
    static func limit(_ query: [(name: String, value: String)], default fallback: Int) throws(FilterError) -> Int {
        guard let text = query.last(where: { $0.name == "limit" })?.value else { return fallback }
        guard let value = Int(text), (1...1000).contains(value) else { throw FilterError("limit", "must be a number from 1 to 1000, not \(JSONWriter.quote(text))") }
        return value
    }

    /// The body, or nil if it is over `limit` bytes.
    static func readBody(_ request: Request, limit: Int) async -> [UInt8]? {
        var body: [UInt8] = []
        do {
            for try await chunk in request.body {
                guard body.count + chunk.readableBytes <= limit else { return nil }
                body.append(contentsOf: chunk.readableBytesView)
            }
        } catch {
            return []
        }
        return body
    }

    /// Stored events.
    let events: any EventStore
    /// The delivery engine (lanes, replays).
    let deliveries: any DeliveryEngine
    /// The routes file in force.
    let config: @Sendable () -> RelayConfig
    /// Reloads the routes file (as SIGHUP).
    let reload: @Sendable () -> Result<RelayConfig, ConfigError>
    let newReplayID: @Sendable () -> String
    /// The Prometheus text.
    let metrics: @Sendable () async -> [UInt8]
    /// Where the store ends (`GET /admin/journal`).
    let journalEnd: @Sendable () async -> JournalBody
    /// Minute-by-minute counts (`GET /admin/activity`, destination health): this process's, or
    /// the database's for every instance.
    let activity: any ActivitySource
    /// Events of provider batches the relay did not accept (`GET /admin/rejections`).
    let rejections: RejectionLog
    /// Reconciliation passes (`POST /admin/reconcile`).
    let reconciliation: ReconcileRunner

    /// Every destination configured or with deliveries in the store, by name.
    func destinationList() async -> [DestinationBody] {
        let statuses = await deliveries.laneStatuses()
        let configured = config().destinations
        let health = await activity.health()
        return Set(statuses.keys).union(configured.keys).sorted().map { name in
            Self.destination(name, status: statuses[name], config: configured[name], health: health[name])
        }
    }

    static func destination(_ name: String, status: DestinationStatus?, config: DestinationConfig?, health: ActivityLog.Health?) -> DestinationBody {
        let status = status ?? DestinationStatus(pending: 0, inFlight: 0, succeeded: 0, dead: 0, paused: false, breakerOpen: false, overflowing: false)
        let state = if status.operatorPaused { "paused" } else if config == nil { "unconfigured" } else if status.paused { "paused_by_410" }
            else if status.breakerOpen { "breaker_open" } else { "healthy" }
        let attempts = health?.attempts ?? 0, succeeded = health?.succeeded ?? 0
        var body = DestinationBody(
            name: name, state: state, configured: config != nil, paused: status.operatorPaused, pausedBy410: status.paused, breakerOpen: status.breakerOpen,
            pending: status.pending, inFlight: status.inFlight, succeeded: status.succeeded, dead: status.dead, maxInFlight: config?.maxInFlight,
            attempts5m: attempts, succeeded5m: succeeded, successRate5m: attempts > 0 ? Double(succeeded) / Double(attempts) : nil, p99Ms5m: health?.p99Millis,
            ratePerSecond: config?.ratePerSecond, rateLimited: status.rateLimited
        )
        body.ordering = config?.ordering.map { OrderingBody(key: $0.key.description, onDead: $0.onDead.rawValue) }
        body.keysBlocked = status.keysBlocked
        body.heldKeys = status.heldKeys.map {
            HeldKeyBody(key: $0.key, eventID: $0.eventID, delivery: $0.eventID + ":" + name, since: $0.since.rfc3339, waiting: $0.waiting)
        }
        return body
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in JSONResponse.ok("{\"status\":\"ok\"}") }
        router.get("/metrics") { _, _ in
            let text = await metrics()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        router.get("/admin/openapi.json") { _, _ in JSONResponse.ok(AdminOpenAPI.document) }
        router.get("/admin/journal") { _, _ in
            JSONResponse.encoded(await journalEnd())
        }
        router.get("/admin/routes") { _, _ in
            JSONResponse.encoded(AdminJSON.routes(config()))
        }
        router.get("/admin/events") { request, _ in
            let query = request.uri.queryParameters.map { (name: String($0.key), value: String($0.value)) }
            let filter: EventFilter
            let limit: Int
            do {
                filter = try EventFilter(query: query, now: SystemClock().now())
                limit = try Self.limit(query, default: 50)
            } catch {
                return JSONResponse.error(.badRequest, "\(error)")
            }
            let cursor = query.last { $0.name == "cursor" }?.value
            do {
                let page = try await events.page(filter: filter, cursor: cursor, limit: limit)
                return JSONResponse.encoded(AdminJSON.page(page))
            } catch let error as FilterError {
                return JSONResponse.error(.badRequest, "\(error)")
            }
        }
        router.get("/admin/events/{id}") { _, context in
            let id = Self.pathParameter(context, "id")
            guard let detail = try await events.detail(id: id) else {
                return JSONResponse.error(.notFound, "no event \(JSONWriter.quote(id))")
            }
            return JSONResponse.encoded(AdminJSON.detail(detail))
        }
        router.post("/admin/replay") { request, _ in
            guard let body = await Self.readBody(request, limit: 4 << 20) else {
                return JSONResponse.error(.contentTooLarge, "the replay request is over 4 MiB")
            }
            let replay: ReplayRequest
            do {
                replay = try ReplayRequest(json: body, now: SystemClock().now())
            } catch {
                return JSONResponse.error(.badRequest, "\(error)")
            }
            let config = config()
            let known = replay.config?.destinations ?? config.destinations
            if let unknown = replay.destinations.first(where: { known[$0] == nil }) {
                return JSONResponse.error(.badRequest, "destinations: unknown destination \(JSONWriter.quote(unknown)) (known: \(known.keys.sorted().joined(separator: ", ")))")
            }
            let store = events
            // Retention must not delete what the replay selects before it has started.
            return try await deliveries.holdingRetention {
                let through = try await store.mark()
                let plan = try await ReplayPlan.make(replay, store: store, routing: config.routing, through: through, keepItems: !replay.dryRun)
                let total = plan.perDestination.values.reduce(0, +)
                if replay.dryRun {
                    return JSONResponse.encoded(ReplayAnswerBody(
                        replayID: nil, dryRun: true, routing: replay.routing.rawValue, matchedEvents: plan.matchedEvents, deliveries: plan.perDestination,
                        totalDeliveries: total, sample: plan.sample.map { ReplaySampleBody(id: $0.id, destinations: $0.destinations) },
                        backtest: plan.backtest.map { backtest in
                            BacktestBody(changedEvents: backtest.changedEvents, added: backtest.added, removed: backtest.removed, changes: backtest.changes.map {
                                BacktestChangeBody(id: $0.id, before: $0.before, after: $0.after, added: $0.added, removed: $0.removed)
                            })
                        }
                    ))
                }
                let id = newReplayID()
                do {
                    try await deliveries.startReplay(id: id, items: plan.items, matchedEvents: plan.matchedEvents, concurrency: replay.concurrency, ratePerSecond: replay.ratePerSecond)
                } catch {
                    return Self.replayNotSaved(error)
                }
                return JSONResponse.encoded(
                    ReplayAnswerBody(
                        replayID: id, dryRun: false, routing: replay.routing.rawValue, matchedEvents: plan.matchedEvents, deliveries: plan.perDestination,
                        totalDeliveries: total, sample: nil
                    ),
                    status: .accepted
                )
            }
        }
        router.get("/admin/replays/{id}") { _, context in
            let id = Self.pathParameter(context, "id")
            guard let status = await deliveries.replayStatus(id) else {
                return JSONResponse.error(.notFound, "no replay \(JSONWriter.quote(id)) (progress is kept for the last 100 replays until a restart)")
            }
            return JSONResponse.encoded(AdminJSON.replay(status))
        }
        router.get("/admin/deliveries") { request, _ in
            let query = request.uri.queryParameters.map { (name: String($0.key), value: String($0.value)) }
            let filter: EventFilter
            let limit: Int
            var state: DeliveryState?
            do {
                filter = try EventFilter(query: query.filter { $0.name != "state" && $0.name != "delivery_state" }, now: SystemClock().now())
                if let text = query.last(where: { $0.name == "state" })?.value {
                    guard let value = DeliveryState(rawValue: text) else { throw FilterError("state", "must be one of pending, succeeded, dead, not \(JSONWriter.quote(text))") }
                    state = value
                }
                limit = try Self.limit(query, default: 100)
            } catch {
                return JSONResponse.error(.badRequest, "\(error)")
            }
            let destinations = Set(query.filter { $0.name == "destination" }.flatMap { $0.value.split(separator: ",").map(String.init) })
            let cursor = query.last { $0.name == "cursor" }?.value
            do {
                let page = try await events.deliveries(filter: filter, state: state, destinations: destinations, cursor: cursor, limit: limit)
                return JSONResponse.encoded(AdminJSON.deliveries(page))
            } catch let error as FilterError {
                return JSONResponse.error(.badRequest, "\(error)")
            }
        }
        router.post("/admin/deliveries/{id}/retry") { _, context in
            let id = Self.pathParameter(context, "id")
            // Held from the lookup until the replay has the event, so retention cannot delete it between.
            return try await deliveries.holdingRetention {
                let (eventID, destination, detail): (String, String, EventDetail)
                switch try await Self.delivery(id, in: events) {
                case .found(let found): (eventID, destination, detail) = found
                case .answer(let answer): return answer
                }
                guard config().destinations[destination] != nil else {
                    return JSONResponse.error(.conflict, "destination \(JSONWriter.quote(destination)) is not in the routes file in force")
                }
                let replayID = newReplayID()
                let item = ReplayItem(event: detail.summary.reference, eventID: eventID, destination: destination)
                do {
                    try await deliveries.startReplay(id: replayID, items: [item], matchedEvents: 1, concurrency: 1, ratePerSecond: nil)
                } catch {
                    return Self.replayNotSaved(error)
                }
                return JSONResponse.encoded(RetryAnswerBody(replayID: replayID, delivery: id), status: .accepted)
            }
        }
        router.post("/admin/deliveries/{id}/skip") { _, context in
            let id = Self.pathParameter(context, "id")
            let (eventID, destination, detail): (String, String, EventDetail)
            switch try await Self.delivery(id, in: events) {
            case .found(let found): (eventID, destination, detail) = found
            case .answer(let answer): return answer
            }
            let key = detail.summary.decision?.orderingKeys[destination]
            let released: Bool
            do {
                released = try await deliveries.releaseHeldKey(destination, event: detail.summary.reference, eventID: eventID)
            } catch {
                return JSONResponse.error(.serviceUnavailable, "the store could not save the skip: \(error); retry later", retryAfter: 1)
            }
            guard released else {
                return JSONResponse.error(.conflict, "delivery \(JSONWriter.quote(id)) holds no ordering key (only a dead delivery to a destination with \"on_dead\": \"hold\" does)")
            }
            return JSONResponse.encoded(SkipAnswerBody(delivery: id, key: key ?? ""))
        }
        router.get("/admin/destinations") { _, _ in
            JSONResponse.encoded(DestinationListBody(destinations: await destinationList()))
        }
        for (action, pause) in [("pause", true), ("resume", false)] {
            router.post("/admin/destinations/{name}/\(action)") { _, context in
                let name = Self.pathParameter(context, "name")
                let statuses = await deliveries.laneStatuses()
                guard config().destinations[name] != nil || statuses[name] != nil else {
                    return JSONResponse.error(.notFound, "no destination \(JSONWriter.quote(name)) in the routes file in force or in the store")
                }
                do {
                    try await deliveries.setOperatorPause(name, paused: pause)
                } catch {
                    return JSONResponse.error(.serviceUnavailable, "the store could not save the \(action): \(error); retry later", retryAfter: 1)
                }
                let body = await destinationList().first { $0.name == name }
                return JSONResponse.encoded(body ?? Self.destination(name, status: nil, config: config().destinations[name], health: nil))
            }
        }
        router.post("/admin/reconcile") { request, _ in
            guard let body = await Self.readBody(request, limit: 64 << 10) else {
                return JSONResponse.error(.contentTooLarge, "the reconcile request is over 64 KiB")
            }
            let json: JSONValue
            do {
                json = try JSONParser.parse(body)
            } catch {
                return JSONResponse.error(.badRequest, "the body is not JSON: \(error)")
            }
            guard let members = json.objectValue else { return JSONResponse.error(.badRequest, "the body must be an object: {\"source\": NAME, \"since\": \"24h\", \"dry_run\": false}") }
            if let unknown = members.first(where: { !["source", "since", "dry_run"].contains($0.key) }) {
                return JSONResponse.error(.badRequest, "\(unknown.key): unknown field (known: source, since, dry_run)")
            }
            guard let name = json["source"]?.stringValue else { return JSONResponse.error(.badRequest, "source: required, a source name") }
            var since: Int64?
            if let value = json["since"] {
                switch value.stringValue.map(ReconcileConfig.since) ?? .failure(ReconcileFailure("must be a duration such as \"24h\" or \"3d\"")) {
                case .success(let millis): since = millis
                case .failure(let problem): return JSONResponse.error(.badRequest, "since: \(problem.message)")
                }
            }
            var dryRun = false
            if let value = json["dry_run"] {
                guard let flag = value.boolValue else { return JSONResponse.error(.badRequest, "dry_run: must be true or false") }
                dryRun = flag
            }
            guard let source = config().sources[name] else {
                return JSONResponse.error(.notFound, "no source \(JSONWriter.quote(name)) in the routes file in force")
            }
            guard source.reconcile != nil else {
                return JSONResponse.error(.badRequest, "source \(JSONWriter.quote(name)) has no reconcile block")
            }
            do {
                let report = try await reconciliation.pass(source, sinceMillis: since, dryRun: dryRun)
                return JSONResponse.encoded(ReconcileAnswerBody(
                    source: report.source, dryRun: report.dryRun, providerHas: report.providerHas, relayHad: report.relayHad, stored: report.stored,
                    marked: report.marked, rejected: report.rejected, storedIDs: report.storedIDs, listedIDs: report.listedIDs, pages: report.pages
                ))
            } catch ReconcileRunner.PassError.running {
                return JSONResponse.error(.conflict, "a reconcile pass for \(JSONWriter.quote(name)) is running; try again when it ends")
            } catch ReconcileRunner.PassError.failed(let failure) {
                return JSONResponse.error(.badGateway, "the provider's API failed: \(failure.message)")
            } catch {
                return JSONResponse.error(.badGateway, "the reconcile pass failed: \(error)")
            }
        }
        router.get("/admin/rejections") { request, _ in
            let query = request.uri.queryParameters.map { (name: String($0.key), value: String($0.value)) }
            let limit: Int
            do {
                limit = try Self.limit(query, default: 100)
            } catch {
                return JSONResponse.error(.badRequest, "\(error)")
            }
            let source = query.last { $0.name == "source" }?.value
            let entries = rejections.recent(source: source, limit: limit).map {
                RejectionBody(time: $0.time.rfc3339, source: $0.source, provider: $0.provider, index: $0.event.index, eventID: $0.event.providerEventID,
                              reason: $0.event.reason, batch: $0.batchAccepted ? "partial" : "refused")
            }
            return JSONResponse.encoded(RejectionListBody(rejections: entries, total: rejections.total))
        }
        router.get("/admin/activity") { _, _ in
            JSONResponse.encoded(ActivityBody(minutes: await activity.lastHour().map {
                ActivityMinuteBody(minute: Timestamp(milliseconds: $0.start).rfc3339, events: $0.events, succeeded: $0.succeeded, retried: $0.retried, dead: $0.dead)
            }))
        }
        router.post("/admin/routes/reload") { _, _ in
            switch reload() {
            case .success(let config):
                return JSONResponse.encoded(ReloadBody(version: config.version, sources: config.sources.count, destinations: config.destinations.count, routes: config.routing.routes.count))
            case .failure(let error):
                return JSONResponse.encoded(
                    ReloadRejectedBody(
                        error: "the routes file is invalid; the previous rules stay in force", version: config().version,
                        errors: error.issues.map(\.description)
                    ),
                    status: .unprocessableContent
                )
            }
        }
    }
}
