import CLibPQ

/// The result of one statement. Owns its `PGresult` and frees it in `deinit`.
public final class QueryResult {
    private let raw: OpaquePointer

    init(owning raw: OpaquePointer) {
        self.raw = raw
    }

    deinit {
        PQclear(raw)
    }

    public var rowCount: Int { Int(PQntuples(raw)) }
    public var columnCount: Int { Int(PQnfields(raw)) }

    /// Rows changed by INSERT/UPDATE/DELETE, 0 when not applicable.
    public var affectedRows: Int { Int(String(cString: PQcmdTuples(raw))) ?? 0 }

    public func columnName(_ column: Int) -> String {
        String(cString: PQfname(raw, Int32(column)))
    }

    /// The text value of a cell, `nil` for SQL NULL.
    public func string(_ row: Int, _ column: Int) -> String? {
        precondition(row >= 0 && row < rowCount && column >= 0 && column < columnCount, "cell out of range")
        if PQgetisnull(raw, Int32(row), Int32(column)) == 1 { return nil }
        let length = Int(PQgetlength(raw, Int32(row), Int32(column)))
        guard let base = PQgetvalue(raw, Int32(row), Int32(column)) else { return nil }
        return base.withMemoryRebound(to: UInt8.self, capacity: length) { p in
            String(decoding: UnsafeBufferPointer(start: p, count: length), as: UTF8.self)
        }
    }

    /// Decodes a cell into `T`; throws `.decoding` on NULL or on text that does not parse.
    public func decode<T: PostgresDecodable>(_ row: Int, _ column: Int, as: T.Type = T.self) throws -> T {
        guard let text = string(row, column) else {
            throw PostgresError(kind: .decoding, operation: "decode", message: "NULL in column \(columnName(column))")
        }
        guard let value = T(postgresText: text) else {
            throw PostgresError(kind: .decoding, operation: "decode", message: "bad \(T.self) in column \(columnName(column))")
        }
        return value
    }

    func error(operation: String) -> PostgresError {
        let state = PQresultErrorField(raw, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        let message = PQresultErrorMessage(raw).map { String(cString: $0).trimmingTrailingNewlines() } ?? "error"
        return PostgresError(kind: .server, sqlState: state, operation: operation, message: message)
    }
}

/// A Swift type that can be read from PostgreSQL's text format.
public protocol PostgresDecodable {
    init?(postgresText: String)
}

extension String: PostgresDecodable {
    public init?(postgresText: String) { self = postgresText }
}

extension Int: PostgresDecodable {
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Int64: PostgresDecodable {
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Bool: PostgresDecodable {
    public init?(postgresText: String) {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

extension Double: PostgresDecodable {
    public init?(postgresText: String) { self.init(postgresText) }
}
