import RelayCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads framed records from one segment file, front to back, through a bounded buffer.
///
/// Shared by start-up recovery, `JournalReader` and `relay journal verify`, so the three agree
/// on what a valid record is.
struct SegmentScanner {
    enum Step {
        /// A valid record starting at `offset`.
        case record(sequence: UInt64, type: JournalRecordType, payload: [UInt8], offset: UInt64, size: Int)
        /// No more bytes before `end`.
        case end
        /// The bytes from `offset` to `end` are too few for the record that starts there.
        case incomplete(offset: UInt64)
        /// The record at `offset` is invalid; `declaredSize` is its framed size if its length was plausible.
        case invalid(offset: UInt64, reason: String, declaredSize: Int?)
    }

    let fd: Int32
    let path: String
    let maxPayload: Int
    /// Where the next record starts.
    private(set) var offset: UInt64
    /// Bytes at or after `end` are not read.
    var end: UInt64

    private var buffer: [UInt8] = []
    private var bufferStart: UInt64 = 0
    private static let chunk = 1 << 20

    init(fd: Int32, path: String, offset: UInt64, end: UInt64, maxPayload: Int) {
        self.fd = fd
        self.path = path
        self.offset = offset
        self.end = end
        self.maxPayload = maxPayload
    }

    /// Opens `path` read-only; the caller closes the descriptor.
    static func openReadOnly(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw JournalError(.io, "cannot open journal segment", path: path, errno: errno) }
        return fd
    }

    static func fileSize(_ fd: Int32, path: String) throws -> UInt64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw JournalError(.io, "cannot stat journal segment", path: path, errno: errno) }
        return UInt64(info.st_size)
    }

    /// Reads exactly `count` bytes at `offset` (fewer only at end of file).
    static func read(fd: Int32, path: String, offset: UInt64, count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        // Uninitialized capacity: pread fills it, so no memset of bytes about to be overwritten.
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let result = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if result < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if result == 0 { break }
                done += result
            }
            initialized = done
        }
        if failure != 0 { throw JournalError(.io, "journal read failed", path: path, errno: failure) }
        return bytes
    }

    /// Makes sure `[offset, offset + count)` (clipped to `end`) is in the buffer.
    private mutating func fill(_ count: Int) throws -> Int {
        let available = Int(min(UInt64(count), end - offset))
        let bufferEnd = bufferStart + UInt64(buffer.count)
        if offset >= bufferStart && offset + UInt64(available) <= bufferEnd { return available }
        let toRead = Int(min(UInt64(max(Self.chunk, count)), end - offset))
        buffer = try Self.read(fd: fd, path: path, offset: offset, count: toRead)
        bufferStart = offset
        return min(available, buffer.count)
    }

    /// Reads the record at the current offset and moves past it if it is valid.
    mutating func next() throws -> Step {
        guard offset < end else { return .end }
        var needed = JournalFormat.recordHeaderSize
        while true {
            let have = try fill(needed)
            let start = Int(offset - bufferStart)
            let frame = buffer.withUnsafeBytes { raw in
                JournalFormat.parseFrame(UnsafeRawBufferPointer(rebasing: raw[start..<(start + have)]), maxPayload: maxPayload)
            }
            switch frame {
            case .record(let sequence, let type, let payload, let size, _, _):
                let bytes = Array(buffer[(start + payload.lowerBound)..<(start + payload.upperBound)])
                let recordOffset = offset
                offset += UInt64(size)
                return .record(sequence: sequence, type: type, payload: bytes, offset: recordOffset, size: size)
            case .incomplete(let more):
                if have < more, offset + UInt64(more) > end { return .incomplete(offset: offset) }
                // The file ended before `end` promised (it shrank underneath): stop, do not spin.
                if have < needed { return .incomplete(offset: offset) }
                needed = more
            case .invalid(let reason, let declaredSize):
                return .invalid(offset: offset, reason: reason, declaredSize: declaredSize)
            }
        }
    }

    /// Moves the offset (used after an invalid record to look past it).
    mutating func seek(to newOffset: UInt64) {
        offset = newOffset
    }
}
