/// An error from PostgreSQL or from libpq.
///
/// `description` is safe to log and to show: it names the failing operation and the SQLSTATE, never
/// parameter values. `debugDescription` adds the server's message, which may quote data.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Could not connect, or the connection broke.
        case connection
        /// The server rejected the statement (see `sqlState`).
        case server
        /// The client-side deadline passed before the server answered.
        case timeout
        /// A row did not decode into the type asked for.
        case decoding
    }

    public var kind: Kind
    /// Five-character SQLSTATE, when the server sent one (e.g. `23505` unique_violation).
    public var sqlState: String?
    /// What the wrapper was doing ("prepare", "execute", "connect", ...).
    public var operation: String
    /// The server's or libpq's message. May contain data: for debugging only.
    public var message: String

    public init(kind: Kind, sqlState: String? = nil, operation: String, message: String) {
        self.kind = kind
        self.sqlState = sqlState
        self.operation = operation
        self.message = message
    }

    public var description: String {
        switch kind {
        case .connection: return "PostgreSQL connection error during \(operation)"
        case .timeout: return "PostgreSQL did not answer in time during \(operation)"
        case .decoding: return "PostgreSQL row decoding error during \(operation)"
        case .server: return "PostgreSQL error \(sqlState ?? "?????") during \(operation)"
        }
    }

    public var debugDescription: String { "\(description): \(message)" }

    /// SQLSTATE class 23: integrity constraint violation.
    public var isConstraintViolation: Bool { sqlState?.hasPrefix("23") ?? false }
    public var isUniqueViolation: Bool { sqlState == "23505" }
}
