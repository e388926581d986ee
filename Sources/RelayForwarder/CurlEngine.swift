internal import CCurlShim
internal import CRelayMemory
import Foundation
import Logging
import Synchronization

/// Forwards requests with libcurl: one dedicated thread owns one multi handle and drives it
/// through libcurl's socket interface on epoll (`ccurl_loop_run_once`), so each round acts only
/// on the connections that are ready; `send` hands a transfer over through a mutex and wakes
/// the loop through its eventfd. No blocking curl call ever runs on Swift's cooperative pool.
/// Connections are reused across requests through the multi handle's connection cache.
public final class CurlEngine: HTTPTransport, Sendable {
    public struct Configuration: Sendable {
        /// Open connections kept at most across all destinations.
        public var maxConnections: Int
        /// Idle easy handles kept for reuse.
        public var handlePoolSize: Int

        public init(maxConnections: Int = 256, handlePoolSize: Int = 64) {
            self.maxConnections = maxConnections
            self.handlePoolSize = handlePoolSize
        }
    }

    private struct Shared {
        var submitted: [CurlTransfer] = []
        var cancelled: [UInt64] = []
        var nextID: UInt64 = 1
        var stopping = false
        var stopped = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var inFlight = 0
    }

    /// The multi handle and its event loop, as values the compiler lets cross threads. Only the
    /// engine thread uses them, except `ccurl_loop_wakeup` (a write to an eventfd), which any
    /// thread may call.
    private struct MultiHandle: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        let loop: UnsafeMutableRawPointer
    }

    public let configuration: Configuration
    private let shared = Mutex(Shared())
    private let multi: MultiHandle
    private let logger: Logger

    public init(configuration: Configuration = Configuration(), logger: Logger) throws {
        let code = ccurl_global_init()
        guard code == 0 else { throw TransportFailure(kind: .other, message: "libcurl failed to initialise (\(code))") }
        ccurl_ignore_sigpipe()
        guard let pointer = ccurl_multi_init() else { throw TransportFailure(kind: .other, message: "curl_multi_init failed") }
        _ = ccurl_multi_set_max_total_connections(pointer, configuration.maxConnections)
        // Every finished transfer's handle leaves the multi handle, and libcurl's default cache
        // keeps four idle connections per handle still in it: each time the transfers in flight
        // dipped, connections beyond that were closed, to be opened again a moment later (about
        // 300 a second under scripts/bench's end-to-end load, seen as TIME-WAIT on the relay's
        // side). The cache keeps as many as may be open.
        _ = ccurl_multi_set_max_cached_connections(pointer, configuration.maxConnections)
        guard let loop = ccurl_loop_new(pointer) else {
            ccurl_multi_cleanup(pointer)
            throw TransportFailure(kind: .other, message: "cannot set up the forwarding engine's event loop (epoll)")
        }
        self.multi = MultiHandle(pointer: pointer, loop: loop)
        self.configuration = configuration
        self.logger = logger
        let thread = Thread { [self] in
            _ = relay_name_this_thread("relay-curl")  // as the journal's writer: from inside, ≤ 15 characters
            self.run()
        }
        thread.start()
    }

    /// Transfers submitted and not yet finished.
    public var inFlight: Int { shared.withLock { $0.inFlight } }

    /// Transfer objects of this engine still alive (finished ones are released at once).
    public var liveTransfers: Int { live.value.load(ordering: .relaxed) }
    private let live = CurlTransfer.LiveCount()

    public func send(_ request: OutboundRequest) async -> Result<TransportResponse, TransportFailure> {
        // Cancellation can arrive before the transfer is handed to the engine (a task cancelled
        // already runs the handler first); the phase decides who answers the continuation.
        let phase = Mutex(SendPhase.preparing)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                submit(request, completion: { continuation.resume(returning: $0) }) { id in
                    phase.withLock { phase -> Bool in
                        if case .cancelledEarly = phase { return false }
                        phase = .submitted(id)
                        return true
                    }
                }
            }
        } onCancel: {
            let submitted = phase.withLock { phase -> UInt64? in
                if case .submitted(let id) = phase { return id }
                phase = .cancelledEarly
                return nil
            }
            if let submitted { cancel(submitted) }
        }
    }

    /// Starts `request` on the engine thread, which calls `completion` when it finishes: no task
    /// and no continuation per request.
    public func start(_ request: OutboundRequest, completion: @escaping @Sendable (Result<TransportResponse, TransportFailure>) -> Void) -> TransferCancel {
        guard let id = submit(request, completion: completion, unlessCancelled: { _ in true }) else { return TransferCancel {} }
        return TransferCancel { [self] in cancel(id) }
    }

    /// Hands a transfer to the engine thread (unless the engine is stopping, or `proceed`, told
    /// its id under the engine's lock, says no: then it finishes at once as cancelled) and
    /// returns its id.
    /// The thread is woken only when nothing else waits to be taken: one wake-up takes them all.
    @discardableResult
    private func submit(
        _ request: OutboundRequest, completion: @escaping @Sendable (Result<TransportResponse, TransportFailure>) -> Void,
        unlessCancelled proceed: (UInt64) -> Bool
    ) -> UInt64? {
        let transfer = CurlTransfer(request: request, live: live, completion: completion)
        let (id, wake, stopping) = shared.withLock { state -> (UInt64?, Bool, Bool) in
            guard !state.stopping else { return (nil, false, true) }
            let id = state.nextID
            state.nextID += 1
            guard proceed(id) else { return (nil, false, false) }
            transfer.id = id
            let wake = state.submitted.isEmpty && state.cancelled.isEmpty
            state.submitted.append(transfer)
            state.inFlight += 1
            return (id, wake, false)
        }
        if wake { _ = ccurl_loop_wakeup(multi.loop) }
        if id == nil {
            transfer.finish(.failure(TransportFailure(kind: .cancelled, message: stopping ? "the forwarding engine is stopped" : "cancelled")))
        }
        return id
    }

    /// Cuts a transfer short; one that already finished is left alone.
    private func cancel(_ id: UInt64) {
        shared.withLock { $0.cancelled.append(id) }
        _ = ccurl_loop_wakeup(multi.loop)
    }

    private enum SendPhase {
        case preparing
        case submitted(UInt64)
        case cancelledEarly
    }

    /// Stops the engine: transfers still in flight finish as cancelled. Returns once the
    /// thread has released every handle.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = shared.withLock { state -> Bool in
                state.stopping = true
                if state.stopped { return true }
                state.exitWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() } else { _ = ccurl_loop_wakeup(multi.loop) }
        }
    }

    // MARK: - Engine thread

    private func run() {
        var active: [UInt64: CurlTransfer] = [:]
        var pool: [UnsafeMutableRawPointer] = []
        while true {
            let (submitted, cancelled, stopping) = shared.withLock { state in
                defer {
                    state.submitted = []
                    state.cancelled = []
                }
                return (state.submitted, state.cancelled, state.stopping)
            }
            for transfer in submitted {
                if let failure = start(transfer, pool: &pool) {
                    complete(transfer, .failure(failure), pool: &pool)
                } else {
                    active[transfer.id] = transfer
                }
            }
            for id in cancelled {
                guard let transfer = active.removeValue(forKey: id) else { continue }
                complete(transfer, .failure(TransportFailure(kind: .cancelled, message: "cancelled")), pool: &pool)
            }
            if stopping {
                for transfer in active.values {
                    complete(transfer, .failure(TransportFailure(kind: .cancelled, message: "the forwarding engine stopped")), pool: &pool)
                }
                active = [:]
                break
            }
            if ccurl_loop_run_once(multi.loop, 1000) != 0 {
                logger.error("the forwarding engine's epoll wait failed; retrying", metadata: ["errno": "\(errno)"])
                Thread.sleep(forTimeInterval: 0.01)
            }
            var easy: UnsafeMutableRawPointer?
            var code: Int32 = 0
            while ccurl_multi_next_done(multi.pointer, &easy, &code) == 1 {
                guard let easy, let opaque = ccurl_easy_get_private(easy) else { continue }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(opaque).takeUnretainedValue()
                guard active.removeValue(forKey: transfer.id) != nil else { continue }
                complete(transfer, outcome(of: transfer, easy: easy, code: code), pool: &pool)
            }
        }
        for handle in pool { ccurl_easy_cleanup(handle) }
        ccurl_loop_free(multi.loop)
        ccurl_multi_cleanup(multi.pointer)
        let waiters = shared.withLock { state in
            state.stopped = true
            // Anything submitted after the last drain is answered here.
            let late = state.submitted
            state.submitted = []
            state.inFlight -= late.count
            for transfer in late {
                transfer.finish(.failure(TransportFailure(kind: .cancelled, message: "the forwarding engine stopped")))
            }
            defer { state.exitWaiters = [] }
            return state.exitWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Sets up the easy handle and adds it to the multi handle; a failure to do so is returned.
    private func start(_ transfer: CurlTransfer, pool: inout [UnsafeMutableRawPointer]) -> TransportFailure? {
        guard let easy = pool.popLast() ?? ccurl_easy_init() else {
            return TransportFailure(kind: .other, message: "curl_easy_init failed")
        }
        transfer.easy = easy
        let request = transfer.request
        var list: UnsafeMutableRawPointer?
        // No "Expect: 100-continue" round trip for bodies over 1 KiB.
        for header in request.headers.map({ "\($0.name): \($0.value)" }) + ["Expect:"] {
            list = ccurl_slist_append(list, header)
        }
        transfer.headerList = list
        let opaque = Unmanaged.passUnretained(transfer).toOpaque()
        var code = ccurl_easy_set_defaults(easy)
        if code == 0 { code = ccurl_easy_set_url(easy, request.url) }
        // A pooled handle was reset to GET.
        if code == 0, request.method == .post { code = request.body.withUnsafeBytes { ccurl_easy_set_post_body(easy, $0.baseAddress, $0.count) } }
        if code == 0 { code = ccurl_easy_set_headers(easy, list) }
        if code == 0 { code = ccurl_easy_set_timeouts(easy, request.timeoutMillis, request.connectTimeoutMillis) }
        if code == 0 { code = ccurl_easy_set_write_callback(easy, curlWriteCallback, opaque) }
        if code == 0 { code = ccurl_easy_set_header_callback(easy, curlHeaderCallback, opaque) }
        if code == 0 { code = ccurl_easy_set_private(easy, opaque) }
        if code == 0 { code = ccurl_multi_add(multi.pointer, easy) }
        guard code == 0 else {
            return TransportFailure(kind: .other, message: "cannot set up the request: \(String(cString: ccurl_easy_strerror(code)))", code: code)
        }
        return nil
    }

    private func outcome(of transfer: CurlTransfer, easy: UnsafeMutableRawPointer, code: Int32) -> Result<TransportResponse, TransportFailure> {
        let duration = Int(ccurl_easy_get_total_time_us(easy) / 1000)
        guard code == 0 else {
            let kind: TransportFailure.Kind
            switch code {
            case 6, 7: kind = .connect  // couldn't resolve host, couldn't connect
            case 28: kind = .timeout  // operation timed out
            default: kind = .other
            }
            return .failure(TransportFailure(kind: kind, message: String(cString: ccurl_easy_strerror(code)), code: code, durationMillis: duration))
        }
        let status = Int(ccurl_easy_get_response_code(easy))
        return .success(TransportResponse(status: status != 0 ? status : transfer.status, headers: transfer.headers, body: transfer.body, durationMillis: duration))
    }

    /// Removes the handle from the multi, frees the header list, pools the handle and resumes.
    private func complete(_ transfer: CurlTransfer, _ result: Result<TransportResponse, TransportFailure>, pool: inout [UnsafeMutableRawPointer]) {
        if let easy = transfer.easy {
            _ = ccurl_multi_remove(multi.pointer, easy)
            if pool.count < configuration.handlePoolSize {
                ccurl_easy_reset(easy)
                pool.append(easy)
            } else {
                ccurl_easy_cleanup(easy)
            }
            transfer.easy = nil
        }
        if let list = transfer.headerList {
            ccurl_slist_free_all(list)
            transfer.headerList = nil
        }
        shared.withLock { $0.inFlight -= 1 }
        transfer.finish(result)
    }
}

/// libcurl's write callback: `userdata` is the transfer (kept alive by the engine's table).
private let curlWriteCallback: ccurl_data_callback = { data, size, count, userdata in
    let length = size * count
    if let data, let userdata {
        Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue().receiveBody(UnsafeRawBufferPointer(start: data, count: length))
    }
    return length
}

/// libcurl's header callback, one line per call.
private let curlHeaderCallback: ccurl_data_callback = { data, size, count, userdata in
    let length = size * count
    if let data, let userdata {
        Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue().receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: length))
    }
    return length
}
