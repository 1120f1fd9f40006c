import CLibPQ
import SystemCalls
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How to reach PostgreSQL. Built from a URL or from key/value pairs and handed to
/// `PQconnectStartParams` as separate keywords: a password is never pasted into a conninfo string.
public struct ConnectionConfig: Sendable, Equatable {
    /// libpq keywords and values, in order (`host`, `port`, `dbname`, `user`, `password`, ...).
    public var parameters: [KeyValue]
    /// Client-side deadline for connecting, in milliseconds.
    public var connectTimeoutMilliseconds: Int
    /// Client-side deadline for one statement, in milliseconds. The server-side `statement_timeout`
    /// is set to the same value so that the server stops working too.
    public var queryTimeoutMilliseconds: Int
    /// After a failed connect, further attempts within this many milliseconds fail at once instead of
    /// waiting on the network again.
    public var reconnectBackoffMilliseconds: Int
    /// `application_name` shown in `pg_stat_activity`.
    public var applicationName: String
    /// Server settings for the session (`name=value`), sent with the connection.
    public var sessionSettings: [String] = []
    /// How much longer than `queryTimeoutMilliseconds` the client waits, so that the server's
    /// `statement_timeout` (a clean error, the connection kept) normally fires first. A prober that
    /// must notice a hung server quickly sets it low.
    public var clientSlackMilliseconds = 250

    public struct KeyValue: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) { self.key = key; self.value = value }
    }

    public init(
        parameters: [KeyValue],
        connectTimeoutMilliseconds: Int = 2_000,
        queryTimeoutMilliseconds: Int = 1_000,
        reconnectBackoffMilliseconds: Int = 200,
        applicationName: String = "switchauth"
    ) {
        self.parameters = parameters
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.queryTimeoutMilliseconds = queryTimeoutMilliseconds
        self.reconnectBackoffMilliseconds = reconnectBackoffMilliseconds
        self.applicationName = applicationName
    }

    /// A `postgresql://` URL or a `key=value` conninfo string. libpq parses it itself
    /// (`expand_dbname`), so nothing is pasted together here.
    public static func url(_ url: String) -> ConnectionConfig {
        ConnectionConfig(parameters: [KeyValue("dbname", url)])
    }

    /// The same server with another database name (used by the test harness and `demo`).
    public func with(database: String) -> ConnectionConfig {
        var copy = self
        copy.parameters.append(KeyValue("dbname", database))
        return copy
    }
}

/// A notification received on a LISTENing connection.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    public var processID: Int32
}

/// One PostgreSQL connection. It owns its `PGconn` and frees it in `deinit`; it is not `Sendable`:
/// libpq connections must not be used by two threads at once, so each worker owns one.
public final class Connection {
    private var conn: OpaquePointer?
    public let config: ConnectionConfig
    private var prepared: [String: String] = [:]
    private var nextStatementID = 0
    private var listening: [String] = []
    private var lastFailedConnect: UInt64 = 0
    private var inTransaction = false
    /// Number of times this connection was (re)established.
    public private(set) var connectCount = 0

    /// Connects at once; throws if the server cannot be reached.
    public init(_ config: ConnectionConfig) throws {
        self.config = config
        try connect()
    }

    /// Tries to connect now but never throws: while the server is unreachable, statements fail
    /// fast (with the reconnect back-off) and the next one after it tries again.
    public init(lazy config: ConnectionConfig) {
        self.config = config
        try? connect()
    }

    deinit {
        if let conn { PQfinish(conn) }
    }

    // MARK: Connecting

    private func connect() throws {
        if let old = conn {
            PQfinish(old)
            conn = nil
        }
        prepared.removeAll()
        inTransaction = false
        var keys = ["application_name", "client_encoding"]
        var values = [config.applicationName, "UTF8"]
        // The server-side statement timeout matches the client deadline.
        keys.append("options")
        values.append((["statement_timeout=\(max(1, config.queryTimeoutMilliseconds))"] + config.sessionSettings)
            .map { "-c \($0)" }.joined(separator: " "))
        var expand = false
        for kv in config.parameters {
            if kv.key == "dbname" && (kv.value.contains("=") || kv.value.hasPrefix("postgres")) { expand = true }
            keys.append(kv.key)
            values.append(kv.value)
        }
        let deadline = MonotonicClock.now() + UInt64(config.connectTimeoutMilliseconds) * 1_000_000
        let newConn: OpaquePointer? = withCStringArray(keys) { k in
            withCStringArray(values) { v in
                PQconnectStartParams(k, v, expand ? 1 : 0)
            }
        }
        guard let newConn else {
            throw PostgresError(kind: .connection, operation: "connect", message: "out of memory")
        }
        conn = newConn
        if PQstatus(newConn) == CONNECTION_BAD {
            let message = currentMessage()
            PQfinish(newConn)
            conn = nil
            lastFailedConnect = MonotonicClock.now()
            throw PostgresError(kind: .connection, operation: "connect", message: message)
        }
        var status = PGRES_POLLING_WRITING
        while true {
            switch status {
            case PGRES_POLLING_OK:
                PQsetnonblocking(newConn, 1)
                // Server notices (e.g. "already exists, skipping") are not errors: keep them off stderr.
                PQsetNoticeProcessor(newConn, { _, _ in }, nil)
                connectCount += 1
                lastFailedConnect = 0
                let channels = listening
                listening = []
                for channel in channels { try listen(channel) }
                return
            case PGRES_POLLING_FAILED:
                let message = currentMessage()
                PQfinish(newConn)
                conn = nil
                lastFailedConnect = MonotonicClock.now()
                throw PostgresError(kind: .connection, operation: "connect", message: message)
            case PGRES_POLLING_READING:
                try waitSocket(newConn, events: Int16(POLLIN), deadline: deadline, operation: "connect", dropOnTimeout: true)
            default:
                try waitSocket(newConn, events: Int16(POLLOUT), deadline: deadline, operation: "connect", dropOnTimeout: true)
            }
            status = PQconnectPoll(newConn)
        }
    }

    /// Reconnects if the connection is known to be broken, respecting the back-off after a failure.
    private func ensureConnected() throws {
        if let conn, PQstatus(conn) == CONNECTION_OK { return }
        if lastFailedConnect != 0,
           MonotonicClock.now() - lastFailedConnect < UInt64(config.reconnectBackoffMilliseconds) * 1_000_000 {
            throw PostgresError(kind: .connection, operation: "connect", message: "database unavailable (backing off)")
        }
        try connect()
    }

    /// True when the connection is up and the server answers `SELECT 1`.
    public func healthCheck() -> Bool {
        do {
            let r = try execute("SELECT 1", retry: .idempotent)
            return r.rowCount == 1
        } catch {
            return false
        }
    }

    /// Closes the connection now (also done by `deinit`). A later call reconnects.
    public func close() {
        if let conn { PQfinish(conn) }
        conn = nil
        prepared.removeAll()
    }

    // MARK: Statements

    /// Whether a statement may run twice. After a connection error the client cannot tell whether
    /// the server ran (and committed) the statement before the link dropped: only a statement whose
    /// second run changes nothing (a read, or a write that sets rather than adds) may be retried.
    public enum Retry: Sendable, Equatable {
        /// Never retried: a connection error is thrown to the caller (increments, inserts, charges).
        case never
        /// Declared idempotent: retried once on a new connection after a connection error outside
        /// a transaction.
        case idempotent
    }

    /// Runs `sql` as a prepared statement with text parameters (`$1`, `$2`, ...). The statement is
    /// prepared once per connection and reused. If the connection had broken since the last call, it
    /// is re-established first. A statement that fails because the connection broke is retried once
    /// on a new connection only when declared `.idempotent` and outside a transaction: otherwise it
    /// might run twice (a balance charged twice, a failure counted twice).
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = [], retry: Retry = .never) throws -> QueryResult {
        do {
            return try executeOnce(sql, parameters)
        } catch let error as PostgresError where error.kind == .connection && !inTransaction && retry == .idempotent {
            lastFailedConnect = 0
            try connect()
            return try executeOnce(sql, parameters)
        }
    }

    private func executeOnce(_ sql: String, _ parameters: [String?]) throws -> QueryResult {
        // libpq's text parameters end at the first NUL: refuse rather than truncate silently.
        for case let p? in parameters where p.utf8.contains(0) {
            throw PostgresError(kind: .server, sqlState: "22021", operation: "bind", message: "parameter contains a NUL byte")
        }
        try ensureConnected()
        guard let conn else { throw PostgresError(kind: .connection, operation: "execute", message: "not connected") }
        let name: String
        if let existing = prepared[sql] {
            name = existing
        } else {
            nextStatementID += 1
            name = "sa\(nextStatementID)"
            let sent = PQsendPrepare(conn, name, sql, Int32(parameters.count), nil)
            _ = try awaitResult(sent, operation: "prepare")
            prepared[sql] = name
        }
        let sent: Int32 = withOptionalCStringArray(parameters) { values in
            PQsendQueryPrepared(conn, name, Int32(parameters.count), values, nil, nil, 0)
        }
        return try awaitResult(sent, operation: "execute")
    }

    /// Runs SQL text that may hold several statements (migration files). Never used with request data.
    public func executeScript(_ sql: String) throws {
        try ensureConnected()
        guard let conn else { throw PostgresError(kind: .connection, operation: "script", message: "not connected") }
        _ = try awaitResult(PQsendQuery(conn, sql), operation: "script")
    }

    /// Runs `body` inside BEGIN/COMMIT; rolls back if it throws.
    public func transaction<T>(_ body: (Connection) throws -> T) throws -> T {
        try executeScript("BEGIN")
        inTransaction = true
        do {
            let value = try body(self)
            inTransaction = false
            try executeScript("COMMIT")
            return value
        } catch {
            inTransaction = false
            try? executeScript("ROLLBACK")
            throw error
        }
    }

    /// Waits for the answer to what was just sent, within the query deadline.
    private func awaitResult(_ sent: Int32, operation: String) throws -> QueryResult {
        guard let conn else { throw PostgresError(kind: .connection, operation: operation, message: "not connected") }
        guard sent == 1 else { throw brokenOrError(operation) }
        let deadline = MonotonicClock.now() + UInt64(max(1, config.queryTimeoutMilliseconds) + max(0, config.clientSlackMilliseconds)) * 1_000_000
        // Push out what libpq buffered.
        while true {
            let f = PQflush(conn)
            if f == 0 { break }
            if f < 0 { throw brokenOrError(operation) }
            try waitSocket(conn, events: Int16(POLLIN | POLLOUT), deadline: deadline, operation: operation, dropOnTimeout: true)
            if PQconsumeInput(conn) == 0 { throw brokenOrError(operation) }
        }
        var kept: QueryResult?
        var firstError: PostgresError?
        while true {
            while PQisBusy(conn) == 1 {
                try waitSocket(conn, events: Int16(POLLIN), deadline: deadline, operation: operation, dropOnTimeout: true)
                if PQconsumeInput(conn) == 0 { throw brokenOrError(operation) }
            }
            guard let raw = PQgetResult(conn) else { break }
            let result = QueryResult(owning: raw)
            switch PQresultStatus(raw) {
            case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_OUT, PGRES_COPY_IN:
                kept = result
            default:
                if firstError == nil { firstError = result.error(operation: operation) }
            }
        }
        if let firstError {
            if PQstatus(conn) != CONNECTION_OK {
                throw PostgresError(kind: .connection, sqlState: firstError.sqlState, operation: operation, message: firstError.message)
            }
            throw firstError
        }
        guard let kept else { throw brokenOrError(operation) }
        return kept
    }

    private func brokenOrError(_ operation: String) -> PostgresError {
        let message = currentMessage()
        if let conn, PQstatus(conn) == CONNECTION_OK {
            return PostgresError(kind: .server, operation: operation, message: message)
        }
        close()
        return PostgresError(kind: .connection, operation: operation, message: message)
    }

    private func waitSocket(_ c: OpaquePointer, events: Int16, deadline: UInt64, operation: String, dropOnTimeout: Bool) throws {
        let fd = PQsocket(c)
        guard fd >= 0 else { throw PostgresError(kind: .connection, operation: operation, message: "no socket") }
        while true {
            let now = MonotonicClock.now()
            if now >= deadline {
                if dropOnTimeout { close() }
                throw PostgresError(kind: .timeout, operation: operation, message: "client-side deadline passed")
            }
            let ms = Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000 + 1))
            do {
                if try Syscall.poll(fd, events: events, milliseconds: ms) { return }
            } catch {
                throw PostgresError(kind: .connection, operation: operation, message: "\(error)")
            }
        }
    }

    private func currentMessage() -> String {
        guard let conn, let c = PQerrorMessage(conn) else { return "unknown libpq error" }
        return String(cString: c).trimmingTrailingNewlines()
    }

    // MARK: COPY FROM STDIN

    /// Runs `sql`, a `COPY ... FROM STDIN` statement (text format), and streams the rows that `body`
    /// hands to `CopyIn.send`: bytes already in COPY text format (`CopyText` writes them). The statement is
    /// fixed SQL text; rows never become SQL. Returns the number of rows the server took. If `body`
    /// throws, the COPY is ended with an error (the server keeps nothing) and the error is rethrown.
    /// Each wait for the socket has the query deadline, so a long COPY is not cut off while it moves.
    @discardableResult
    public func copyIn(_ sql: String, _ body: (CopyIn) throws -> Void) throws -> Int {
        try ensureConnected()
        guard let conn else { throw PostgresError(kind: .connection, operation: "copy", message: "not connected") }
        guard PQsendQuery(conn, sql) == 1 else { throw brokenOrError("copy") }
        try flushCopy(conn)
        // Not awaitResult: in the COPY IN state PQgetResult hands out a COPY_IN result on every call.
        while PQisBusy(conn) == 1 {
            try waitSocket(conn, events: Int16(POLLIN), deadline: copyDeadline(), operation: "copy", dropOnTimeout: true)
            if PQconsumeInput(conn) == 0 { throw brokenOrError("copy") }
        }
        guard let startRaw = PQgetResult(conn) else { throw brokenOrError("copy") }
        let start = QueryResult(owning: startRaw)
        if PQresultStatus(startRaw) != PGRES_COPY_IN {
            // Refused before any row (no such table, a syntax error): read to the end of the answer.
            var error = PQresultStatus(startRaw) == PGRES_FATAL_ERROR
                ? start.error(operation: "copy")
                : PostgresError(kind: .server, operation: "copy", message: "not a COPY FROM STDIN statement")
            while true {
                while PQisBusy(conn) == 1 {
                    try waitSocket(conn, events: Int16(POLLIN), deadline: copyDeadline(), operation: "copy", dropOnTimeout: true)
                    if PQconsumeInput(conn) == 0 { throw brokenOrError("copy") }
                }
                guard let raw = PQgetResult(conn) else { break }
                let status = PQresultStatus(raw)
                _ = QueryResult(owning: raw)   // owned, and freed, here
                if status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH {
                    // Another COPY started (several statements in `sql`): give up the connection.
                    error = PostgresError(kind: .connection, operation: "copy", message: "unexpected COPY state")
                    close()
                    throw error
                }
            }
            throw error
        }
        var bodyError: Error?
        do {
            let sink = CopyIn { [self] bytes in
                guard !bytes.isEmpty else { return }
                while true {
                    let r = bytes.withUnsafeBufferPointer { p in
                        p.withMemoryRebound(to: CChar.self) { PQputCopyData(conn, $0.baseAddress, Int32($0.count)) }
                    }
                    if r == 1 { break }
                    if r < 0 { throw brokenOrError("copy") }
                    try waitSocket(conn, events: Int16(POLLOUT), deadline: copyDeadline(), operation: "copy", dropOnTimeout: true)
                }
                try flushCopy(conn)
            }
            defer { sink.ended = true }
            try body(sink)
        } catch let e as PostgresError where e.kind != .server {
            throw e   // the connection is gone (closed by brokenOrError/waitSocket)
        } catch {
            bodyError = error
        }
        // A body that caught a connection error and threw another: the PGconn may be gone.
        guard self.conn == conn else { throw PostgresError(kind: .connection, operation: "copy", message: "connection lost during COPY") }
        while true {
            let r = bodyError == nil ? PQputCopyEnd(conn, nil) : PQputCopyEnd(conn, "aborted by the client")
            if r == 1 { break }
            if r < 0 { throw brokenOrError("copy") }
            try waitSocket(conn, events: Int16(POLLOUT), deadline: copyDeadline(), operation: "copy", dropOnTimeout: true)
        }
        try flushCopy(conn)
        // The COPY's own result (and nothing else): each PGresult owned by one QueryResult.
        var outcome: QueryResult?
        var firstError: PostgresError?
        while true {
            while PQisBusy(conn) == 1 {
                try waitSocket(conn, events: Int16(POLLIN), deadline: copyDeadline(), operation: "copy", dropOnTimeout: true)
                if PQconsumeInput(conn) == 0 { throw brokenOrError("copy") }
            }
            guard let raw = PQgetResult(conn) else { break }
            let result = QueryResult(owning: raw)
            if PQresultStatus(raw) == PGRES_COMMAND_OK {
                outcome = result
            } else if firstError == nil {
                firstError = result.error(operation: "copy")
            }
        }
        if let bodyError { throw bodyError }
        if let firstError { throw firstError }
        return outcome?.affectedRows ?? 0
    }

    private func copyDeadline() -> UInt64 {
        MonotonicClock.now() + UInt64(max(1, config.queryTimeoutMilliseconds) + max(0, config.clientSlackMilliseconds)) * 1_000_000
    }

    /// Sends what libpq buffered, keeping its buffer (and this process's memory) small.
    private func flushCopy(_ conn: OpaquePointer) throws {
        while true {
            let f = PQflush(conn)
            if f == 0 { return }
            if f < 0 { throw brokenOrError("copy") }
            try waitSocket(conn, events: Int16(POLLOUT), deadline: copyDeadline(), operation: "copy", dropOnTimeout: true)
            // The server may have answered (an error): read it so that the socket never stalls.
            if PQconsumeInput(conn) == 0 { throw brokenOrError("copy") }
        }
    }

    // MARK: LISTEN / NOTIFY

    /// Starts listening on `channel`. Re-issued automatically after a reconnect.
    public func listen(_ channel: String) throws {
        try ensureConnected()
        guard let conn else { throw PostgresError(kind: .connection, operation: "listen", message: "not connected") }
        try executeScript("LISTEN \(Self.identifier(channel, conn))")
        if !listening.contains(channel) { listening.append(channel) }
    }

    /// Stops listening on `channel` (and no longer after a reconnect).
    public func unlisten(_ channel: String) throws {
        listening.removeAll { $0 == channel }
        guard let conn else { return }
        try executeScript("UNLISTEN \(Self.identifier(channel, conn))")
    }

    /// `name` quoted as an SQL identifier by libpq.
    private static func identifier(_ name: String, _ conn: OpaquePointer) -> String {
        name.withCString { p in
            guard let escaped = PQescapeIdentifier(conn, p, strlen(p)) else { return "\"\"" }
            defer { PQfreemem(escaped) }
            return String(cString: escaped)
        }
    }

    /// The connection's socket, for `poll`. -1 when not connected.
    public var socketDescriptor: Int32 {
        guard let conn else { return -1 }
        return PQsocket(conn)
    }

    /// The server process of this session (0 when not connected): a notification whose `processID`
    /// is this one was sent by this session.
    public var backendPID: Int32 {
        guard let conn else { return 0 }
        return PQbackendPID(conn)
    }

    /// Whether the connection is currently up.
    public var isConnected: Bool {
        guard let conn else { return false }
        return PQstatus(conn) == CONNECTION_OK
    }

    /// Waits up to `timeoutMilliseconds` for notifications and returns those that arrived. Throws a
    /// `.connection` error when the connection broke (the caller reconnects with `reconnect()`).
    public func notifications(timeoutMilliseconds: Int) throws -> [PostgresNotification] {
        try ensureConnected()
        guard let conn else { return [] }
        var out = drainNotifications(conn)
        if !out.isEmpty { return out }
        let ready: Bool
        do {
            ready = try Syscall.poll(PQsocket(conn), events: Int16(POLLIN), milliseconds: Int32(clamping: timeoutMilliseconds))
        } catch {
            throw PostgresError(kind: .connection, operation: "listen", message: "\(error)")
        }
        if ready {
            if PQconsumeInput(conn) == 0 { throw brokenOrError("listen") }
            out = drainNotifications(conn)
        }
        return out
    }

    /// Drops the connection and connects again (re-LISTENing).
    public func reconnect() throws {
        lastFailedConnect = 0
        try connect()
    }

    private func drainNotifications(_ conn: OpaquePointer) -> [PostgresNotification] {
        var out: [PostgresNotification] = []
        while let n = PQnotifies(conn) {
            let channel = String(cString: n.pointee.relname)
            let payload = n.pointee.extra.map { String(cString: $0) } ?? ""
            out.append(PostgresNotification(channel: channel, payload: payload, processID: n.pointee.be_pid))
            PQfreemem(n)
        }
        return out
    }
}

// MARK: helpers


extension String {
    func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" || last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// Calls `body` with a NULL-terminated-free array of C strings that live for the call.
func withCStringArray<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    var pointers = copies.map { UnsafePointer<CChar>($0) }
    pointers.append(nil)
    return body(pointers)
}

func withOptionalCStringArray<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { s in s.map { strdup($0) } ?? nil }
    defer { copies.forEach { free($0) } }
    let pointers = copies.map { $0.map { UnsafePointer<CChar>($0) } }
    return body(pointers)
}

/// The sending end of a running `Connection.copyIn`; valid only inside its body.
public final class CopyIn {
    private let sendBytes: ([UInt8]) throws -> Void
    fileprivate var ended = false
    fileprivate init(_ send: @escaping ([UInt8]) throws -> Void) { sendBytes = send }

    /// Queues `bytes` (whole rows or not) and sends them, waiting while the socket is full.
    public func send(_ bytes: [UInt8]) throws {
        precondition(!ended, "CopyIn used after its COPY ended")
        try sendBytes(bytes)
    }
}

/// COPY text format (`FORMAT text`, the default): columns separated by tab, rows ended by newline,
/// `\N` for NULL, and backslash, tab, newline and carriage return escaped with a backslash.
public enum CopyText {
    @inline(__always)
    public static func append(_ value: String, to out: inout [UInt8]) {
        var value = value
        value.withUTF8 { append(bytes: $0, to: &out) }
    }

    public static func append(bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        for b in bytes {
            switch b {
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            default: out.append(b)
            }
        }
    }

    public static func appendNull(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "N"))
    }

    public static func appendTab(to out: inout [UInt8]) { out.append(UInt8(ascii: "\t")) }
    public static func appendNewline(to out: inout [UInt8]) { out.append(UInt8(ascii: "\n")) }
}
