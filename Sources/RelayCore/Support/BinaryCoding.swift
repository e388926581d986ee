/// A compact little-endian encoding for journal payloads: fixed-width integers, and strings and
/// byte arrays prefixed with their UInt32 length.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func write<T: FixedWidthInteger>(_ value: T) { bytes.appendLittleEndian(value) }
    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func write(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            bytes.appendLittleEndian(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func write(bytes value: some Collection<UInt8>) {
        bytes.appendLittleEndian(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func write(_ values: [String]) {
        bytes.appendLittleEndian(UInt32(values.count))
        for value in values { write(value) }
    }
}

/// Reads what `ByteWriter` wrote; every read checks bounds and throws on short or bad input.
public struct ByteReader {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    /// Offsets are relative to the start of `bytes`, which may be a slice of a larger buffer
    /// (a checkpoint's section is read in place, not copied out of the file's bytes).
    private let bytes: ArraySlice<UInt8>
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func read<T: FixedWidthInteger>(_ type: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { throw Error(description: "truncated record at byte \(offset)") }
        let value = bytes.withUnsafeBytes { $0.loadLE(T.self, at: offset) }
        offset += size
        return value
    }

    public mutating func readBool() throws -> Bool { try read(UInt8.self) != 0 }

    public mutating func readBytes() throws -> [UInt8] {
        let count = Int(try read(UInt32.self))
        guard bytes.count - offset >= count else { throw Error(description: "truncated field at byte \(offset)") }
        defer { offset += count }
        let start = bytes.startIndex + offset
        return Array(bytes[start..<(start + count)])
    }

    /// Steps over a length-prefixed field (bytes or a string) without reading it.
    public mutating func skipField() throws {
        let count = Int(try read(UInt32.self))
        guard bytes.count - offset >= count else { throw Error(description: "truncated field at byte \(offset)") }
        offset += count
    }

    /// A length-prefixed field as a slice of the bytes being read: no copy.
    public mutating func readSlice() throws -> ArraySlice<UInt8> {
        let count = Int(try read(UInt32.self))
        guard bytes.count - offset >= count else { throw Error(description: "truncated field at byte \(offset)") }
        defer { offset += count }
        let start = bytes.startIndex + offset
        return bytes[start..<(start + count)]
    }

    public mutating func readString() throws -> String {
        let count = Int(try read(UInt32.self))
        guard bytes.count - offset >= count else { throw Error(description: "truncated string at byte \(offset)") }
        defer { offset += count }
        let start = bytes.startIndex + offset
        return String(decoding: bytes[start..<(start + count)], as: UTF8.self)
    }

    public mutating func readStrings() throws -> [String] {
        let count = try readListLength()
        var values: [String] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try readString()) }
        return values
    }

    /// Steps over what `ByteWriter.write(_: [String])` wrote.
    public mutating func skipStrings() throws {
        for _ in 0..<(try readListLength()) { try skipField() }
    }

    private mutating func readListLength() throws -> Int {
        let count = Int(try read(UInt32.self))
        guard count <= bytes.count - offset else { throw Error(description: "bad list length at byte \(offset)") }
        return count
    }
}

extension Array where Element == UInt8 {
    @inlinable
    package mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    @inlinable
    package func loadLE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
