/// What a connection is doing, as far as its deadline and the cause of a timeout go: derived from
/// the connection's fields (`ClientConnection.phase`), so that the loop's timing rules are pure
/// functions of a value (`deadline`, `timeoutCause`), tested without sockets.
enum ConnectionPhase: Equatable {
    /// Closing: reading and discarding what the peer still sends, until `until` at the latest.
    case lingering(until: UInt64)
    /// A request waits for its answer from another thread, due at `answerDue` (the fallback goes
    /// out then); its write has the write timeout after that.
    case awaitingAnswer(answerDue: UInt64)
    /// Output that could not be written at once, since `since`.
    case writing(since: UInt64)
    /// Part of a request is in, since `since`.
    case readingRequest(since: UInt64)
    /// Accepted at `since`, nothing of a request read yet (as every mod_xml_curl lookup starts).
    case awaitingFirstByte(since: UInt64)
    /// Between requests of a kept-alive connection, since its last activity.
    case idle(since: UInt64)

    /// When a connection in this phase is closed, given the server's timeouts.
    func deadline(_ t: ConnectionTimeouts, now: UInt64) -> UInt64 {
        switch self {
        case .lingering(let until): return until
        case .awaitingAnswer(let due): return max(due, now) + t.write
        case .writing(let since): return since + t.write
        case .readingRequest(let since): return since + t.request
        // Nothing since accept: the (shorter) first-byte deadline.
        case .awaitingFirstByte(let since): return since + min(t.request, t.firstByte)
        case .idle(let since): return since + t.idle
        }
    }

    /// What a close at the deadline counts as (nil: an ordinary close, not a timeout to count).
    var timeoutCause: ConnectionTimeoutCause? {
        switch self {
        case .writing: return .write
        case .readingRequest: return .request
        case .awaitingFirstByte: return .firstByte
        case .lingering, .awaitingAnswer, .idle: return nil
        }
    }
}

enum ConnectionTimeoutCause: Equatable {
    /// Output not written within the write timeout (`ServerCounters.writeTimeouts`).
    case write
    /// A request not complete within the request timeout (`timedOut`).
    case request
    /// Nothing received within the first-byte timeout (`firstByteTimeouts`).
    case firstByte
}

/// The server's timeouts in nanoseconds.
struct ConnectionTimeouts: Equatable {
    var request: UInt64
    var firstByte: UInt64
    var idle: UInt64
    var write: UInt64

    init(request: UInt64, firstByte: UInt64, idle: UInt64, write: UInt64) {
        self.request = request
        self.firstByte = firstByte
        self.idle = idle
        self.write = write
    }

    init(_ c: ServerConfig) {
        self.init(request: UInt64(c.requestTimeoutMilliseconds) * 1_000_000, firstByte: UInt64(c.firstByteTimeoutMilliseconds) * 1_000_000,
                  idle: UInt64(c.idleTimeoutMilliseconds) * 1_000_000, write: UInt64(c.writeTimeoutMilliseconds) * 1_000_000)
    }
}

extension ClientConnection {
    /// The phase its fields say, in order of precedence.
    var phase: ConnectionPhase {
        if lingering { return .lingering(until: deadline) }
        if let p = pending { return .awaitingAnswer(answerDue: p.deadline) }
        if let w = writeStarted { return .writing(since: w) }
        if parser.hasPartialRequest { return .readingRequest(since: requestStarted ?? lastActivity) }
        if served == 0, let r = requestStarted { return .awaitingFirstByte(since: r) }
        return .idle(since: lastActivity)
    }
}
