import RelayCore
/// The on-disk layout of journal segments and records. All integers are little-endian.
///
/// A segment file `DATA/journal/<first sequence, 20 digits>.seg` starts with a 20-byte header:
///
/// | bytes | field |
/// |---|---|
/// | 0..<8 | magic `RLYJRNL1` |
/// | 8..<16 | base sequence (the first record's sequence number) |
/// | 16..<20 | CRC-32C of bytes 0..<16 |
///
/// and is followed by records, each a 20-byte header and its payload:
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | payload length |
/// | 4..<8 | CRC-32C of bytes 8..<(20 + length) |
/// | 8..<16 | sequence number |
/// | 16..<18 | record type |
/// | 18..<20 | flags: bit 0 marks the last record of a group commit, bit 1 the first |
///
/// The checksum covers the sequence and type as well as the payload, so a record copied to the
/// wrong place or a stale sector is caught, not only a flipped payload bit. The commit flag lets
/// recovery tell a torn last write (truncate it) from damage to an earlier, acknowledged commit
/// (refuse): a commit is written only after the one before it was synced.
public enum JournalFormat {
    public static let magic: [UInt8] = Array("RLYJRNL1".utf8)
    public static let segmentHeaderSize = 20
    public static let recordHeaderSize = 20
    public static let segmentSuffix = ".seg"

    /// File name of the segment whose first record has sequence `base`.
    public static func segmentName(base: UInt64) -> String {
        let digits = String(base)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + segmentSuffix
    }

    /// The base sequence encoded in a segment file name, or nil if it is not a segment name.
    public static func segmentBase(fileName: String) -> UInt64? {
        guard fileName.hasSuffix(segmentSuffix) else { return nil }
        let stem = fileName.dropLast(segmentSuffix.count)
        guard stem.count == 20, stem.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(stem)
    }

    static func segmentHeader(base: UInt64) -> [UInt8] {
        var bytes = magic
        bytes.appendLittleEndian(base)
        bytes.appendLittleEndian(CRC32C.checksum(bytes))
        return bytes
    }

    /// Checks a segment header; returns its base sequence, or nil if it is not valid.
    static func parseSegmentHeader(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard bytes.count >= segmentHeaderSize,
              Array(bytes[0..<8]) == magic,
              CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<16])) == bytes.loadLE(UInt32.self, at: 16)
        else { return nil }
        return bytes.loadLE(UInt64.self, at: 8)
    }

    /// Appends one framed record to `buffer`.
    static let commitEndFlag: UInt16 = 1
    static let commitStartFlag: UInt16 = 2

    static func appendRecord(
        to buffer: inout [UInt8], sequence: UInt64, type: JournalRecordType, payload: [UInt8], startsCommit: Bool = false, endsCommit: Bool = false
    ) {
        let start = buffer.count
        buffer.appendLittleEndian(UInt32(payload.count))
        buffer.appendLittleEndian(UInt32(0))  // checksum, filled in below
        buffer.appendLittleEndian(sequence)
        buffer.appendLittleEndian(type.rawValue)
        buffer.appendLittleEndian((endsCommit ? commitEndFlag : 0) | (startsCommit ? commitStartFlag : 0))
        buffer.append(contentsOf: payload)
        let crc = buffer.withUnsafeBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[(start + 8)...]))
        }
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    /// The result of looking at the bytes where a record should start.
    enum Frame {
        /// A complete, valid record of `size` bytes in total.
        case record(sequence: UInt64, type: JournalRecordType, payload: Range<Int>, size: Int, startsCommit: Bool, endsCommit: Bool)
        /// Not enough bytes for the header or for the declared payload.
        case incomplete(needed: Int)
        /// The header is complete but the record is invalid (checksum or length).
        case invalid(reason: String, declaredSize: Int?)
    }

    /// Reads the frame at the start of `bytes` (indices relative to `bytes`).
    static func parseFrame(_ bytes: UnsafeRawBufferPointer, maxPayload: Int) -> Frame {
        guard bytes.count >= recordHeaderSize else { return .incomplete(needed: recordHeaderSize) }
        let length = Int(bytes.loadLE(UInt32.self, at: 0))
        guard length <= maxPayload else {
            return .invalid(reason: "record length \(length) exceeds the limit \(maxPayload)", declaredSize: nil)
        }
        let size = recordHeaderSize + length
        guard bytes.count >= size else { return .incomplete(needed: size) }
        let stored = bytes.loadLE(UInt32.self, at: 4)
        let actual = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[8..<size]))
        guard stored == actual else { return .invalid(reason: "checksum mismatch", declaredSize: size) }
        let flags = bytes.loadLE(UInt16.self, at: 18)
        guard flags & ~(commitEndFlag | commitStartFlag) == 0 else { return .invalid(reason: "unknown flags \(flags)", declaredSize: size) }
        return .record(
            sequence: bytes.loadLE(UInt64.self, at: 8),
            type: JournalRecordType(rawValue: bytes.loadLE(UInt16.self, at: 16)),
            payload: recordHeaderSize..<size,
            size: size,
            startsCommit: flags & commitStartFlag != 0,
            endsCommit: flags & commitEndFlag != 0
        )
    }
}
