/// A growable byte buffer written by copies: the documents and log lines of the request path are
/// built from 20-100 short pieces each, and `Array.append(contentsOf:)` takes every piece through
/// its generic path (~90 instructions a piece, measured with callgrind). Here a piece is a capacity
/// check and one copy. Noncopyable: its one owner frees the storage.
public struct ByteWriter: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var used = 0
    @usableFromInline var capacity: Int

    public init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Bytes written so far.
    public var count: Int { used }

    /// A copy of what was written.
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: used)) }

    /// What was written, for the length of `body`.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: used))
    }

    @inlinable @inline(__always)
    public mutating func append(_ p: UnsafeRawPointer, count n: Int) {
        if capacity &- used < n { grow(n) }
        UnsafeMutableRawPointer(base + used).copyMemory(from: p, byteCount: n)
        used &+= n
    }

    @inlinable @inline(__always)
    public mutating func append(_ b: UInt8) {
        if capacity == used { grow(1) }
        base[used] = b
        used &+= 1
    }

    @inlinable @inline(__always)
    public mutating func append(_ buf: UnsafeBufferPointer<UInt8>) {
        if let p = buf.baseAddress { append(p, count: buf.count) }
    }

    @inlinable @inline(__always)
    public mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { append($0) }
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { append($0) }
    }

    /// A String's UTF-8 (contiguous for small strings too).
    @inlinable
    public mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { append($0) }
    }

    @usableFromInline @inline(never)
    mutating func grow(_ n: Int) {
        let larger = max(capacity * 2, used + n)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        moved.initialize(from: base, count: used)
        base.deallocate()
        base = moved
        capacity = larger
    }
}
