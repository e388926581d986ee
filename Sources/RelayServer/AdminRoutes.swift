import Hummingbird
import Logging
import RelayCore

/// The admin listener (never the public one).
struct AdminRoutes {
    let journal: Journal
    let server: RelayServer

    func register(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in JSONResponse.ok("{\"status\":\"ok\"}") }
        router.get("/admin/journal") { _, _ in
            let durable = journal.durable
            return JSONResponse.ok("{\"last_sequence\":\(durable.lastSequence),\"segment\":\(durable.end.segment),\"offset\":\(durable.end.offset)}")
        }
        router.get("/admin/routes") { _, _ in
            let config = server.pipeline.currentConfig
            return JSONResponse.ok(
                "{\"version\":\(JSONWriter.quote(config.version)),\"sources\":\(JSONWriter.array(config.sources.keys.sorted())),"
                    + "\"destinations\":\(JSONWriter.array(config.destinations.keys.sorted())),\"routes\":\(JSONWriter.array(config.routing.routes.map(\.name)))}"
            )
        }
        router.get("/admin/events") { request, _ in
            let query = request.uri.queryParameters.map { (name: String($0.key), value: String($0.value)) }
            let filter: EventFilter
            var limit = 50
            do {
                filter = try EventFilter(query: query, now: SystemClock().now())
                if let text = query.last(where: { $0.name == "limit" })?.value {
                    guard let value = Int(text), (1...1000).contains(value) else { throw FilterError("limit", "must be a number from 1 to 1000, not \(JSONWriter.quote(text))") }
                    limit = value
                }
            } catch {
                return JSONResponse.error(.badRequest, "\(error)")
            }
            let cursor = query.last { $0.name == "cursor" }?.value
            let store = server.events
            let size = limit
            do {
                let page = try await runOffPool("relay-admin-query") { try store.page(filter: filter, cursor: cursor, limit: size) }
                return JSONResponse.ok(AdminJSON.page(page))
            } catch let error as FilterError {
                return JSONResponse.error(.badRequest, "\(error)")
            }
        }
        router.get("/admin/events/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            let store = server.events
            guard let detail = try await runOffPool("relay-admin-query", { try store.detail(id: id) }) else {
                return JSONResponse.error(.notFound, "no event \(JSONWriter.quote(id))")
            }
            return JSONResponse.ok(AdminJSON.detail(detail))
        }
        router.post("/admin/routes/reload") { _, _ in
            switch server.reload() {
            case .success(let config):
                return JSONResponse.ok(
                    "{\"reloaded\":true,\"version\":\(JSONWriter.quote(config.version)),\"sources\":\(config.sources.count),"
                        + "\"destinations\":\(config.destinations.count),\"routes\":\(config.routing.routes.count)}"
                )
            case .failure(let error):
                let errors = JSONWriter.array(error.issues.map(\.description))
                let version = JSONWriter.quote(server.pipeline.currentConfig.version)
                return JSONResponse.ok(
                    "{\"error\":\"the routes file is invalid; the previous rules stay in force\",\"version\":\(version),\"errors\":\(errors)}",
                    status: .unprocessableContent
                )
            }
        }
    }
}
