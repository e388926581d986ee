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
