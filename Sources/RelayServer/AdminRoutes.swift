import Hummingbird
import Logging
import RelayCore

/// The admin listener (never the public one).
struct AdminRoutes {
    let journal: Journal

    func register(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in JSONResponse.ok("{\"status\":\"ok\"}") }
        router.get("/admin/journal") { _, _ in
            let durable = journal.durable
            return JSONResponse.ok("{\"last_sequence\":\(durable.lastSequence),\"segment\":\(durable.end.segment),\"offset\":\(durable.end.offset)}")
        }
    }
}
