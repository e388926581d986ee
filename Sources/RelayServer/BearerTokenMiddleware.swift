import Crypto
import Hummingbird

/// Requires `Authorization: Bearer <token>` on every request but the console's static files, compared in constant time (as
/// SHA-256 digests, so neither the content nor the length of the token leaks through timing).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let expected: SHA256.Digest

    init(token: String) {
        expected = SHA256.hash(data: Array(token.utf8))
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // The console's files hold no data: they load without the token and send it on every call.
        if ConsoleRoutes.isConsole(request) { return try await next(request, context) }
        guard let header = request.headers[.authorization] else {
            return JSONResponse.error(.unauthorized, "this admin listener needs Authorization: Bearer <RELAY_ADMIN_TOKEN>")
        }
        let prefix = "bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix else {
            return JSONResponse.error(.unauthorized, "the Authorization header must be Bearer <token>")
        }
        let given = SHA256.hash(data: Array(header.utf8.dropFirst(prefix.utf8.count)))
        // Digest == is constant-time in swift-crypto.
        guard given == expected else { return JSONResponse.error(.unauthorized, "wrong admin token") }
        return try await next(request, context)
    }
}
