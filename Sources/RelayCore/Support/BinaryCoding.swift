/// A compact little-endian encoding for journal payloads: fixed-width integers, and strings and
/// byte arrays prefixed with their UInt32 length.
public struct ByteWriter {
    @usableFromInline var storage: [UInt8] = []

    public var bytes: [UInt8] { storage }

    @inlinable
    public init(capacity: Int = 256) { storage.reserveCapacity(capacity) }

    @inlinable
    public mutating func write<T: FixedWidthInteger>(_ value: T) { storage.appendLittleEndian(value) }
    @inlinable
    public mutating func write(_ value: Bool) { storage.append(value ? 1 : 0) }

    @inlinable
    public mutating func write(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            storage.appendLittleEndian(UInt32(utf8.count))
            storage.append(contentsOf: utf8)
        }
    }

    @inlinable
    public mutating func write(bytes value: some Collection<UInt8>) {
        storage.appendLittleEndian(UInt32(value.count))
        storage.append(contentsOf: value)
    }

    @inlinable
    public mutating func write(_ values: [String]) {
        storage.appendLittleEndian(UInt32(values.count))
        for value in values { write(value) }
    }
}

/// Reads what `ByteWriter` wrote; every read checks bounds and throws on short or bad input.
public struct ByteReader {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String

        @usableFromInline
        init(description: String) {
            self.description = description
        }
    }

    /// Offsets are relative to the start of `bytes`, which may be a slice of a larger buffer
    /// (a checkpoint's section is read in place, not copied out of the file's bytes).
    @usableFromInline let bytes: ArraySlice<UInt8>
    @usableFromInline var position = 0

    public var offset: Int { position }

    @inlinable
    public init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    @inlinable
    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    @inlinable
    public var isAtEnd: Bool { position >= bytes.count }

    @inlinable
    public mutating func read<T: FixedWidthInteger>(_ type: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - position >= size else { throw Error(description: "truncated record at byte \(position)") }
        let value = bytes.withUnsafeBytes { $0.loadLE(T.self, at: position) }
        position += size
        return value
    }

    @inlinable
    public mutating func readBool() throws -> Bool { try read(UInt8.self) != 0 }

    @inlinable
    public mutating func readBytes() throws -> [UInt8] {
        let count = Int(try read(UInt32.self))
        guard bytes.count - position >= count else { throw Error(description: "truncated field at byte \(position)") }
        defer { position += count }
        let start = bytes.startIndex + position
        return Array(bytes[start..<(start + count)])
    }

    /// Steps over a length-prefixed field (bytes or a string) without reading it.
    @inlinable
    public mutating func skipField() throws {
        let count = Int(try read(UInt32.self))
        guard bytes.count - position >= count else { throw Error(description: "truncated field at byte \(position)") }
        position += count
    }

    /// A length-prefixed field as a slice of the bytes being read: no copy.
    @inlinable
    public mutating func readSlice() throws -> ArraySlice<UInt8> {
        let count = Int(try read(UInt32.self))
        guard bytes.count - position >= count else { throw Error(description: "truncated field at byte \(position)") }
        defer { position += count }
        let start = bytes.startIndex + position
        return bytes[start..<(start + count)]
    }

    @inlinable
    public mutating func readString() throws -> String {
        let count = Int(try read(UInt32.self))
        guard bytes.count - position >= count else { throw Error(description: "truncated string at byte \(position)") }
        defer { position += count }
        let start = bytes.startIndex + position
        return String(decoding: bytes[start..<(start + count)], as: UTF8.self)
    }

    @inlinable
    public mutating func readStrings() throws -> [String] {
        let count = try readListLength()
        var values: [String] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try readString()) }
        return values
    }

    /// Steps over what `ByteWriter.write(_: [String])` wrote.
    @inlinable
    public mutating func skipStrings() throws {
        for _ in 0..<(try readListLength()) { try skipField() }
    }

    @usableFromInline
    mutating func readListLength() throws -> Int {
        let count = Int(try read(UInt32.self))
        guard count <= bytes.count - position else { throw Error(description: "bad list length at byte \(position)") }
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
