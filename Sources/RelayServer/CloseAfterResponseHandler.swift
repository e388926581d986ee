import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes the connection once a response that says `Connection: close` has been written.
///
/// Hummingbird keeps a connection open unless the *request* asked to close it: after a handler
/// answers early (413 for a body over the limit, 408 for a body that trickles in too slowly) it
/// goes on reading and discarding the rest of the body. A client dribbling that body a byte at a
/// time would then hold the connection indefinitely, and one that reuses the connection would see
/// its next request swallowed as leftover body. The ingest routes mark such answers with
/// `Connection: close`; this handler makes it so.
final class CloseAfterResponseHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var closeAfterEnd = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            closeAfterEnd = head.headerFields[.connection]?.lowercased() == "close"
        case .end where closeAfterEnd:
            closeAfterEnd = false
            context.writeAndFlush(data, promise: promise)
            context.close(promise: nil)
            return
        default:
            break
        }
        context.write(data, promise: promise)
    }
}
