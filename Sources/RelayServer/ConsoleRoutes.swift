import HTTPTypes
import Hummingbird
import NIOCore

/// The web console: plain HTML, CSS and JavaScript modules compiled into the binary
/// (`Console/`, embedded by SwiftPM), served on the admin listener at `/ui/`. The files hold no
/// data and no secret, so they load without the admin token; every call they make to the admin
/// API carries it. A strict Content-Security-Policy allows scripts, styles and requests to this
/// origin only: nothing is fetched from elsewhere, and nothing inline runs.
enum ConsoleRoutes {
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// Path under /ui/ → (content type, bytes).
    static let files: [String: (type: String, bytes: [UInt8])] = [
        "index.html": ("text/html; charset=utf-8", PackageResources.index_html),
        "style.css": ("text/css; charset=utf-8", PackageResources.style_css),
        "app.js": ("text/javascript; charset=utf-8", PackageResources.app_js),
        "api.js": ("text/javascript; charset=utf-8", PackageResources.api_js),
        "ui.js": ("text/javascript; charset=utf-8", PackageResources.ui_js),
        "operations.js": ("text/javascript; charset=utf-8", PackageResources.operations_js),
        "events.js": ("text/javascript; charset=utf-8", PackageResources.events_js),
        "replay.js": ("text/javascript; charset=utf-8", PackageResources.replay_js),
    ]

    /// Whether a request is for the console's own files (which need no token).
    static func isConsole(_ request: Request) -> Bool {
        guard request.method == .get || request.method == .head else { return false }
        let path = request.uri.path
        return path == "/" || path == "/ui" || path.hasPrefix("/ui/")
    }

    static func register(on router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in redirect() }
        // "/ui" and "/ui/" are one route to the router: the page for the latter, a redirect for the former.
        router.get("/ui") { request, _ in request.uri.path.hasSuffix("/") ? file("index.html") : redirect() }
        router.get("/ui/{file}") { _, context in file(context.parameters.get("file") ?? "") }
    }

    static func redirect() -> Response {
        var headers = HTTPFields()
        headers[.location] = "/ui/"
        return Response(status: .found, headers: headers)
    }

    static func file(_ name: String) -> Response {
        guard let file = files[name] else { return JSONResponse.error(.notFound, "no console file \(name.debugDescription)") }
        var headers = HTTPFields()
        headers[.contentType] = file.type
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        if let name = HTTPField.Name("Referrer-Policy") { headers[name] = "no-referrer" }
        headers[.cacheControl] = "no-cache"
        if let name = HTTPField.Name("X-Frame-Options") { headers[name] = "DENY" }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.bytes)))
    }
}
