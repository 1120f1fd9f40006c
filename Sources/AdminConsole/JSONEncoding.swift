import Foundation
import Store

extension JSON {
    /// A typed value as the JSON it encodes to (`Encodable`): keys in the order `encode(to:)` writes
    /// them, numbers as their exact text (a `Decimal` is never made a binary float), a `RawJSON`
    /// (jsonb as PostgreSQL wrote it) inserted as it is, and an absent optional written as `null`
    /// rather than left out (the API shows every documented key). The console's answers and the
    /// CLI's `--json` are written by it from the store's typed rows.
    public init<T: Encodable>(encoding value: T) throws {
        let root = JSONNode()
        try root.store(value, codingPath: [])
        self = root.json
    }
}

extension JSON {
    /// One page of a list as the API answers it: its rows, the cursors of the next and previous
    /// pages, the total (a lower bound when `total_exact` is false) and the page size.
    init<Row: Encodable>(page: ListPage<Row>) throws {
        self = .object([("items", .array(try page.items.map(JSON.init(encoding:)))), ("next_cursor", .optional(page.nextCursor)),
                         ("prev_cursor", .optional(page.prevCursor)), ("total", .int(page.total)), ("total_exact", .bool(page.totalExact)),
                         ("limit", .int(page.limit))])
    }
}

/// A value being built: a leaf, or an object or array whose members are still being written
/// (containers hand out child nodes that are filled in later).
private final class JSONNode {
    enum Content {
        case leaf(JSON)
        case object([(String, JSONNode)])
        case array([JSONNode])
    }

    var content: Content = .leaf(.null)

    var json: JSON {
        switch content {
        case .leaf(let v): return v
        case .object(let fields): return .object(fields.map { ($0.0, $0.1.json) })
        case .array(let items): return .array(items.map(\.json))
        }
    }

    func store<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws {
        switch value {
        case let raw as RawJSON: content = .leaf(.raw(raw.text))
        case let s as String: content = .leaf(.string(s))
        case let b as Bool: content = .leaf(.bool(b))
        case let d as Decimal: content = .leaf(.number(d.description))
        case let i as any FixedWidthInteger: content = .leaf(.number(String(describing: i)))
        case let d as Double:
            guard d.isFinite else {
                throw EncodingError.invalidValue(d, .init(codingPath: codingPath, debugDescription: "\(d) is not a JSON number"))
            }
            content = .leaf(.number(d.description))
        default:
            try value.encode(to: NodeEncoder(node: self, codingPath: codingPath))
        }
    }

    func field(_ key: String) -> JSONNode {
        let child = JSONNode()
        if case .object(var fields) = content {
            fields.removeAll { $0.0 == key }
            fields.append((key, child))
            content = .object(fields)
        } else {
            content = .object([(key, child)])
        }
        return child
    }

    func item() -> JSONNode {
        let child = JSONNode()
        if case .array(var items) = content {
            items.append(child)
            content = .array(items)
        } else {
            content = .array([child])
        }
        return child
    }

    var count: Int {
        if case .array(let items) = content { return items.count }
        return 0
    }
}

private struct NodeEncoder: Encoder {
    let node: JSONNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object([]) }
        return KeyedEncodingContainer(KeyedNodeContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return UnkeyedNodeContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleNodeContainer(node: node, codingPath: codingPath)
    }
}

private struct KeyedNodeContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: JSONNode
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.field(key.stringValue).content = .leaf(.null) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try node.field(key.stringValue).store(value, codingPath: codingPath + [key])
    }
    // Synthesized conformances call these for optionals: nil is written as null, not left out.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: node.field(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        NodeEncoder(node: node.field(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.field("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { NodeEncoder(node: node.field(key.stringValue), codingPath: codingPath + [key]) }
}

private struct IndexKey: CodingKey {
    let intValue: Int?
    let stringValue: String
    init(_ i: Int) { intValue = i; stringValue = String(i) }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.init(intValue) }
}

private struct UnkeyedNodeContainer: UnkeyedEncodingContainer {
    let node: JSONNode
    let codingPath: [any CodingKey]
    var count: Int { node.count }

    mutating func encodeNil() throws { node.item().content = .leaf(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = codingPath + [IndexKey(count)]
        try node.item().store(value, codingPath: path)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: node.item(), codingPath: codingPath).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        NodeEncoder(node: node.item(), codingPath: codingPath).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.item(), codingPath: codingPath) }
}

private struct SingleNodeContainer: SingleValueEncodingContainer {
    let node: JSONNode
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.content = .leaf(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try node.store(value, codingPath: codingPath) }
}
