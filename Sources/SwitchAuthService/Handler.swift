import Decisions
import Foundation
import HTTPServer
import Locking
import LogLines
import Logging
import Lookups
import Postgres
import Store
import SystemCalls

/// HTTP in front of the resolver, one per event loop. It never waits: a lookup is classified on the
/// loop, then handed to the database threads with a deadline the loop keeps; past it (or at once,
/// while the database is known to be down) the fail-closed answer goes out. A full queue sheds the
/// lookup with 503, so that FreeSWITCH moves on to its next binding instead of waiting.
/// Routes: `POST <path>` for mod_xml_curl (GET with a query string too), `GET /healthz`, `GET /metrics`.
public final class LookupHandler: RequestHandler, Sendable {
    let resolver: Resolver
    let config: ServiceConfig
    let counters: ServerCounters
    let logger: Logger
    /// The service's own handler, when it is the logger's: decision lines are written to it
    /// straight from their ordered fields (no `Logger.Metadata` built per request).
    let decisionLog: KeyValueLogHandler?
    let pool: DatabasePool
    let health: DatabaseHealth
    let replica: Replica?
    let trust: TrustRecorder?
    /// The secrets accepted: `basic_auth`, then `basic_auth_previous` while before its end.
    private let credentials: [AcceptedCredential]
    private let throttle: SharedBasicAuthThrottle
    /// One line per 10 s at most for refused clients (and one for the previous secret's use).
    private let refusalLines = Locked(LogLineLimiter())
    private let previousSecretLines = Locked(LogLineLimiter(intervalSeconds: 60))

    struct AcceptedCredential: Sendable {
        /// `user:password`.
        let decoded: [UInt8]
        /// `Basic <base64>` of it, as libcurl sends gateway-credentials.
        let header: [UInt8]
        /// Accepted until (seconds since the epoch); nil: always.
        let until: Double?

        init(_ text: String, until: Double?) {
            decoded = Array(text.utf8)
            header = Array("Basic \(Data(text.utf8).base64EncodedString())".utf8)
            self.until = until
        }
    }

    /// The hangup listeners (call_limits = global), for their gauges.
    let callListeners: [CallEventListener]

    init(resolver: Resolver, counters: ServerCounters, pool: DatabasePool, health: DatabaseHealth,
         replica: Replica? = nil, trust: TrustRecorder? = nil, throttle: SharedBasicAuthThrottle = SharedBasicAuthThrottle(),
         callListeners: [CallEventListener] = []) {
        self.callListeners = callListeners
        self.resolver = resolver
        self.replica = replica
        self.trust = trust
        self.throttle = throttle
        self.config = resolver.config
        self.counters = counters
        self.logger = resolver.logger
        if let own = resolver.logger.handler as? KeyValueLogHandler, own.writesFieldsDirectly { decisionLog = own } else { decisionLog = nil }
        self.pool = pool
        self.health = health
        var accepted: [AcceptedCredential] = []
        if let u = config.basicAuthUser, let p = config.basicAuthPassword {
            accepted.append(AcceptedCredential("\(u):\(p)", until: nil))
            if let previous = config.basicAuthPrevious, let until = config.basicAuthPreviousUntil {
                accepted.append(AcceptedCredential(previous, until: until))
            }
        }
        credentials = accepted
    }

    public func shutdown() {}

    public func handle(_ request: HTTPRequest, context: RequestContext, responder: Responder) -> HandlerResult {
        let started = MonotonicClock.now()
        let path = request.head.path
        if !config.allowClients.isEmpty {
            guard let peer = IPAddress(context.peerHost), config.allowClients.contains(where: { $0.contains(peer) }) else {
                logRefusal("client not allowed", peer: context.peerHost)
                return .now(finish(HTTPResponse(status: .forbidden, text: "client not allowed\n", close: true), section: "http", outcome: "forbidden", started: started))
            }
        }
        switch path {
        case "/healthz":
            guard request.head.method == "GET" || request.head.method == "HEAD" else { return .now(methodNotAllowed("GET", started)) }
            // From what the prober last saw: answered at once, also while PostgreSQL hangs.
            let healthy = health.isUp
            return .now(finish(HTTPResponse(status: healthy ? .ok : .serviceUnavailable, text: healthy ? "ok\n" : "database unavailable\n"),
                               section: "healthz", outcome: healthy ? "ok" : "database_unavailable", started: started))
        case "/metrics":
            guard request.head.method == "GET" else { return .now(methodNotAllowed("GET", started)) }
            if let refusal = authorize(request, context) { return .now(refusal) }
            return .now(finish(HTTPResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                            body: Array(metricsText().utf8)), section: "metrics", outcome: "ok", started: started))
        case Substring(config.path):
            let form: [UInt8]
            switch request.head.method {
            case "POST":
                guard request.head.header("Content-Type", hasCaseInsensitivePrefix: "application/x-www-form-urlencoded") else {
                    return .now(finish(HTTPResponse(status: .unsupportedMediaType, text: "expected application/x-www-form-urlencoded\n"),
                                       section: "http", outcome: "unsupported_media_type", started: started))
                }
                form = request.body
            case "GET":
                let parts = request.head.target.split(separator: "?", maxSplits: 1)
                form = parts.count == 2 ? Array(parts[1].utf8) : []
            default:
                return .now(methodNotAllowed("GET, POST", started))
            }
            if let refusal = authorize(request, context) { return .now(refusal) }
            return lookup(resolver.classify(FormFields(encoded: form)), peer: context.peerHost,
                          started: started, responder: responder)
        default:
            return .now(finish(HTTPResponse(status: .notFound, text: "not found\n"), section: "http", outcome: "not_found", started: started))
        }
    }

    private func lookup(_ lookup: Lookup, peer: String, started: UInt64, responder: Responder) -> HandlerResult {
        if case .answered(let outcome) = lookup {
            return .now(answer(outcome, peer: peer, started: started))
        }
        // From the memory copy while it is provably current: decided here, no thread hop. A failure
        // to count goes to the database path below (counted before the answer leaves); a success's
        // trust record is written in the background.
        if let replica, let facts = replica.facts(for: lookup) {
            let (outcome, effect) = resolver.decide(lookup, facts)
            switch effect {
            case .none:
                replica.noteAnswered()
                return .now(answer(outcome, peer: peer, started: started, fromMemory: true))
            case let .recordSuccess(source, user):
                if let trust {
                    trust.record(source: source, user: user)
                    replica.noteSuccess(source: source, user: user)
                    replica.noteAnswered()
                    return .now(answer(outcome, peer: peer, started: started, fromMemory: true))
                }
            case .countFailure:
                break
            case .admitCall(let admission, let decision):
                // The facts came from the copy; only the shared counters need the database.
                return admit(lookup, decision, admission, peer: peer, started: started, responder: responder)
            }
        } else if let replica, Replica.answers(lookup), health.isUp || replica.isRecentlyLapsed() {
            // A late heartbeat: wait for it (up to the lookup's deadline) rather than load the
            // database threads; once it is back the lookup is decided again on a database thread
            // (from the copy, no statement) and answered through the responder. With the circuit
            // open only while the lapse is young: the stall that delays a heartbeat also fails the
            // prober's 100 ms probe (two saturation runs: 4,735 lookups answered fail-closed at once
            // in lapses of ~15 ms); a database really gone ages the proof past it, and then the
            // fallback goes out at once, below. A resumed lookup may find the proof lapsed again:
            // the heartbeat that resumed it was as old as the stall (one back after 249 ms proves the
            // copy for 1 ms more), and the stall that delayed it is PostgreSQL's too; it waits for
            // the next one like the first time (its deadline bounds the waits), instead of reading
            // PostgreSQL in that stall. A feed that broke clears the proof: then nothing waits.
            let deadline = started + UInt64(config.answerTimeoutMilliseconds) * 1_000_000
            let parked = replica.park(deadline: deadline) { [self] in
                let job = DatabaseJob(deadline: deadline) { [self] _ in
                    guard MonotonicClock.now() < deadline else { return }
                    // Decided as if it had just arrived; a database path it takes answers by itself.
                    if case .now(let response) = self.lookup(lookup, peer: peer, started: started, responder: responder) {
                        responder.respond(response)
                    }
                }
                // Past max_queued_lookups too: the bound keeps PostgreSQL's queue short, and these
                // were admitted already and are decided from the copy (at most 20,000 wait). Refused,
                // each waited for its deadline and got the fail-closed answer: a lapse of 5 ms at
                // 53,000 lookups/s parks more than the 256 the queue takes.
                if !pool.submit(job, beyondCapacity: true) { resolver.metrics.lookupShed() }
            }
            if parked {
                return .later(deadline: deadline, fallback: { [self] in answer(resolver.fallback(lookup), peer: peer, started: started) })
            }
        }
        guard health.isUp else {
            resolver.metrics.lookupCircuitOpen()
            if case .acl = lookup { resolver.metrics.aclFromCache() }
            return .now(answer(resolver.fallback(lookup), peer: peer, started: started))
        }
        var timeout = config.answerTimeoutMilliseconds
        if case .acl = lookup {
            // With a last known good list, it goes out past acl_timeout_ms. Without one the only
            // alternative is no list at all (FreeSWITCH deletes it), so the read may take up to the
            // switch's own 2 s timeout, less a margin.
            timeout = resolver.acl.lastGood != nil ? config.aclTimeoutMilliseconds : max(config.answerTimeoutMilliseconds, 1_500)
        }
        // From the moment the whole request is in (a client trickling its bytes in is not the
        // database's delay; the request deadline bounds that separately).
        let deadline = started + UInt64(timeout) * 1_000_000
        let job = DatabaseJob(deadline: deadline) { [self] session in
            let outcome = resolver.resolve(lookup, db: session.read, writer: { session.write })
            if outcome.reason == .databaseUnavailable { health.markDown() }
            if MonotonicClock.now() > deadline {
                // The loop has sent the fallback already; say so rather than log a decision nobody got.
                logger.warning("lookup answered after its deadline; the fail-closed answer was sent", metadata: [
                    "section": .string(outcome.section), "would_be": .string(outcome.reason.rawValue), "peer": .string(peer)])
                return
            }
            responder.respond(answer(outcome, peer: peer, started: started))
        }
        guard pool.submit(job) else {
            resolver.metrics.lookupShed()
            return .now(finish(HTTPResponse(status: .serviceUnavailable, text: "overloaded: lookup shed\n"),
                               section: Self.section(lookup), outcome: "shed", started: started))
        }
        // Built only if the deadline passes: then the fail-closed answer is logged and counted like
        // any decision (reason database_unavailable, served=fail_closed).
        return .later(deadline: deadline, fallback: { [self] in
            if case .acl = lookup { resolver.metrics.aclFromCache() }
            return answer(resolver.fallback(lookup), peer: peer, started: started)
        })
    }

    /// An allowed call of a limited account: admitted on a database thread (the primary) within the
    /// lookup's deadline; past it, or with the database down, the fail-closed refusal (503) goes out.
    private func admit(_ lookup: Lookup, _ decision: DialplanDecision, _ admission: CallAdmission, peer: String, started: UInt64,
                       responder: Responder) -> HandlerResult {
        guard health.isUp else {
            resolver.metrics.lookupCircuitOpen()
            return .now(answer(resolver.fallback(lookup), peer: peer, started: started))
        }
        let deadline = started + UInt64(config.answerTimeoutMilliseconds) * 1_000_000
        let admissions = resolver.admissions
        let complete: @Sendable (Result<CallSlots.Admission, any Error>, DatabaseSession) -> Void = { [self] result, session in
            let outcome = resolver.admitted(lookup, decision, admission, result, db: session.write)
            if outcome.reason == .databaseUnavailable { health.markDown() }
            if MonotonicClock.now() > deadline {
                logger.warning("call admitted after its deadline; the fail-closed answer was sent", metadata: [
                    "would_be": .string(outcome.reason.rawValue), "uuid": .string(admission.uniqueID), "peer": .string(peer)])
                // The switch got 503: the call never starts, so its slot (if one was taken) goes now.
                if outcome.reason == .ok, admissions?.release([admission.uniqueID]) == nil {
                    _ = try? CallSlots.release(session.write, uniqueIDs: [admission.uniqueID])
                }
                return
            }
            responder.respond(answer(outcome, peer: peer, started: started))
        }
        /// On a database thread within the deadline, or shed at once with the queue full.
        func hop(_ job: DatabaseJob, shed: () -> Void = {}) -> HandlerResult {
            guard pool.submit(job) else {
                shed()
                resolver.metrics.lookupShed()
                return .now(finish(HTTPResponse(status: .serviceUnavailable, text: "overloaded: lookup shed\n"),
                                   section: "dialplan", outcome: "shed", started: started))
            }
            return .later(deadline: deadline, fallback: { [self] in answer(resolver.fallback(lookup), peer: peer, started: started) })
        }
        // Held in memory (this instance holds the admissions): decided here, no thread hop, unless a
        // fraud level passed (recorded in the database, on a database thread).
        if let result = admissions?.admit(admission) {
            if FraudCheck.crossings(admission.fraudThresholds, result.measurements).isEmpty {
                return .now(answer(resolver.admitted(lookup, decision, admission, .success(result), db: nil), peer: peer, started: started))
            }
            // Shed: not recorded, so fail closed, and the slot it took goes.
            return hop(DatabaseJob(deadline: deadline) { session in complete(.success(result), session) },
                       shed: { _ = admissions?.release([admission.uniqueID]) })
        }
        // Alone, or with the admissions queued beside it (the pool batches them).
        return hop(DatabaseJob(deadline: deadline, admission: AdmissionWork(call: admission, finish: complete)) { [resolver] session in
            complete(resolver.admitShared(admission, db: session.write, deadline: deadline), session)
        })
    }

    static func section(_ lookup: Lookup) -> String {
        switch lookup {
        case .answered(let o): return o.section
        case .directory: return "directory"
        case .acl: return "configuration"
        case .dialplan: return "dialplan"
        }
    }

    /// Logs the decision and turns it into the HTTP answer.
    private func answer(_ outcome: LookupOutcome, peer: String, started: UInt64, fromMemory: Bool = false) -> HTTPResponse {
        let level: Logger.Level = outcome.reason == .hostileRequest || outcome.reason == .databaseUnavailable ? .warning : .info
        // The line's metadata is built only when the line is written.
        if resolver.logLevel <= level {
            if decisionLog != nil {
                // The line's own fields are merged in as it is written (keys in order): no copy of
                // the decision's fields, no insertion into them (measured: ~2.5 µs a lookup).
                var extra: [(key: StaticString, value: String)] = [("peer", peer), ("reason", outcome.reason.rawValue), ("section", outcome.section)]
                if fromMemory { extra.append(("served", "memory")) }
                // Called on the stored handler (`if let` would copy it: its sink, shared by every
                // loop, retained and released per line).
                decisionLog?.write(level: level, message: "decision", fields: outcome.metadata, extra: extra)
            } else {
                var fields = outcome.metadata
                fields.set("section", outcome.section)
                fields.set("reason", outcome.reason.rawValue)
                fields.set("peer", peer)
                if fromMemory { fields.set("served", "memory") }
                logger.log(level: level, "decision", metadata: fields.metadata)
            }
        }
        return finish(response(outcome), section: outcome.section, outcome: outcome.reason.rawValue, started: started)
    }

    private func response(_ outcome: LookupOutcome) -> HTTPResponse {
        outcome.ok
            ? HTTPResponse(status: .ok, contentType: "text/xml", body: outcome.body)
            : HTTPResponse(status: .serviceUnavailable, text: "no acl.conf available\n")
    }

    private func methodNotAllowed(_ allow: String, _ started: UInt64) -> HTTPResponse {
        finish(HTTPResponse(status: .methodNotAllowed, body: Array("method not allowed\n".utf8), headers: [("Allow", allow)]),
               section: "http", outcome: "method_not_allowed", started: started)
    }

    /// HTTP Basic auth as mod_xml_curl's `gateway-credentials` sends it, compared in constant time.
    /// The right secret is always accepted: a 256-bit secret cannot be guessed, so nothing is gained
    /// by refusing it, and refusing it would let anyone who shares the switch's address (a local
    /// process, a scraper with an old password) lock the switch out. Only what fails is throttled:
    /// a source past 10 failures a minute gets 429 instead of 401 for the rest of the minute.
    /// After `gateway-secret --rotate`, the previous secret is accepted until its stated end.
    private func authorize(_ request: HTTPRequest, _ context: RequestContext) -> HTTPResponse? {
        guard let current = credentials.first else { return nil }
        let header = request.head.header("Authorization")
        if let header {
            // What libcurl sends for gateway-credentials, byte for byte: no base64 decoding, no copy.
            if Hashing.constantTimeEquals(header.utf8, current.header) { return nil }
            if accepts(Array(header.utf8), decoded: nil, context) { return nil }
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "basic",
               let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)) {
                let given = [UInt8](data)
                if Hashing.constantTimeEquals(given, current.decoded) || accepts(nil, decoded: given, context) { return nil }
            }
        }
        let now = MonotonicClock.now()
        if case .throttled(let seconds) = throttle.verdict(peer: context.peerHost, now: now) {
            resolver.metrics.basicAuth("throttled")
            resolver.metrics.observe(section: "http", outcome: "throttled", seconds: 0)
            logRefusal("unauthorized client throttled", peer: context.peerHost)
            return HTTPResponse(status: .tooManyRequests, body: Array("too many failed attempts\n".utf8),
                                headers: [("Retry-After", String(seconds))], close: true)
        }
        throttle.recordFailure(source: BasicAuthThrottle.source(peer: context.peerHost), now: now)
        resolver.metrics.basicAuth("wrong")
        resolver.metrics.observe(section: "http", outcome: "unauthorized", seconds: 0)
        logRefusal("unauthorized client", peer: context.peerHost)
        return HTTPResponse(status: .unauthorized, body: Array("unauthorized\n".utf8),
                            headers: [("WWW-Authenticate", "Basic realm=\"switchauth\"")], close: true)
    }

    /// The previous secret, while it is still accepted (a header as sent, or decoded credentials).
    private func accepts(_ header: [UInt8]?, decoded: [UInt8]?, _ context: RequestContext) -> Bool {
        guard credentials.count > 1 else { return false }
        let wall = WallClock.seconds()
        for c in credentials.dropFirst() where c.until.map({ wall < $0 }) ?? true {
            let match = header.map { Hashing.constantTimeEquals($0, c.header) } ?? decoded.map { Hashing.constantTimeEquals($0, c.decoded) } ?? false
            if match {
                if previousSecretLines.withLock({ $0.admit(now: MonotonicClock.now()) }) != nil {
                    logger.notice("a lookup used the previous basic_auth secret; reload every switch's mod_xml_curl before it ends",
                                  metadata: ["peer": .string(context.peerHost),
                                             "until": .string(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: c.until ?? wall)))])
                }
                return true
            }
        }
        return false
    }

    /// Refusals are logged one line per 10 s at most, saying how many were not logged since the last.
    private func logRefusal(_ message: Logger.Message, peer: String) {
        guard let unlogged = refusalLines.withLock({ $0.admit(now: MonotonicClock.now()) }) else { return }
        logger.warning(message, metadata: ["peer": .string(peer), "refusals_not_logged": .stringConvertible(unlogged),
                                           "window_s": "10"])
    }

    private func finish(_ response: HTTPResponse, section: String, outcome: String, started: UInt64) -> HTTPResponse {
        let seconds = Double(MonotonicClock.now() - started) / 1e9
        resolver.metrics.observe(section: section, outcome: outcome, seconds: seconds)
        return response
    }

    private func metricsText() -> String {
        var gauges: [(String, String, Double)] = [
            ("switchauth_open_connections", "Open client connections.", Double(counters.open.value)),
            ("switchauth_connections_accepted", "Connections accepted since start.", Double(counters.accepted.value)),
            ("switchauth_connections_rejected_over_limit", "Connections refused with 503 over max_connections.", Double(counters.rejectedOverLimit.load(ordering: .relaxed))),
            ("switchauth_connections_accept_errors", "accept4 failures other than an empty backlog (EMFILE, ENFILE, ...).", Double(counters.acceptErrors.load(ordering: .relaxed))),
            ("switchauth_connections_rejected_not_allowed", "Connections closed at accept: peer outside allow_clients.", Double(counters.rejectedNotAllowed.load(ordering: .relaxed))),
            ("switchauth_connections_timed_out", "Connections cut at a deadline with a request half received.", Double(counters.timedOut.load(ordering: .relaxed))),
            ("switchauth_connections_evicted_idle", "Idle connections closed at max_connections to make room for a new one.", Double(counters.evictedIdle.load(ordering: .relaxed))),
            ("switchauth_connections_rejected_per_source", "Connections refused with 503 over max_connections_per_source.", Double(counters.rejectedPerSource.load(ordering: .relaxed))),
            ("switchauth_connections_first_byte_timeouts", "Connections closed at first_byte_timeout_ms with nothing of a request sent.", Double(counters.firstByteTimeouts.load(ordering: .relaxed))),
            ("switchauth_connections_write_timeouts", "Connections closed because the peer did not take an answer within write_timeout_ms.", Double(counters.writeTimeouts.load(ordering: .relaxed))),
            ("switchauth_connections_unsent_bytes", "Answer bytes held in memory for connections whose peer is not taking them.", Double(counters.unsentBytes.load(ordering: .relaxed))),
            ("switchauth_http_parse_errors", "Requests refused by the HTTP parser.", Double(counters.parseErrors.load(ordering: .relaxed))),
            ("switchauth_lookups_in_flight", "Lookups waiting for their answer from a database thread.", Double(counters.inFlightDeferred.load(ordering: .relaxed))),
            ("switchauth_lookups_queued", "Lookups queued for a database thread.", Double(pool.queued)),
            ("switchauth_lookups_deadline_fallbacks", "Lookups answered fail-closed by the event loop at their deadline.", Double(counters.deadlineFallbacks.load(ordering: .relaxed))),
            ("switchauth_database_up", "1 while the prober sees PostgreSQL answer, else 0 (lookups then fail closed at once).", health.isUp ? 1 : 0),
            ("switchauth_log_lines_dropped", "Log lines dropped because standard error's reader fell more than 8 MiB behind.", Double(LogSink.standardError.dropped)),
        ]
        if let replica {
            gauges.append(("switchauth_replica_current", "1 while the memory copy is proven within replica_staleness_ms of PostgreSQL (lookups are answered from it), else 0.", replica.isCurrent() ? 1 : 0))
            gauges.append(("switchauth_replica_lag_seconds", "Age of the copy's newest proof (its last returned heartbeat); -1: none.", replica.lagSeconds ?? -1))
            gauges.append(("switchauth_replica_lookups_answered", "Lookups answered from the memory copy since start.", Double(replica.answered.load(ordering: .relaxed))))
            gauges.append(("switchauth_replica_loads", "Full loads of the copy (start, reconnect, a truncated table).", Double(replica.reloads.load(ordering: .relaxed))))
            gauges.append(("switchauth_replica_proof_lapses", "Times the copy's proof expired while its feed ran (a heartbeat came back late): lookups read PostgreSQL meanwhile.", Double(replica.proofLapses.load(ordering: .relaxed))))
            gauges.append(("switchauth_replica_lapsed_seconds", "Time the copy was not proven current in those lapses, in all.", Double(replica.lapsedNanoseconds.load(ordering: .relaxed)) / 1e9))
            gauges.append(("switchauth_replica_lookups_parked", "Lookups that found the copy's proof lapsed and waited for the next heartbeat instead of reading PostgreSQL.", Double(replica.parkedTotal.load(ordering: .relaxed))))
            gauges.append(("switchauth_replica_lookups_resumed", "Parked lookups handed on within their deadline (a heartbeat came back, or the feed was lost: then to PostgreSQL).", Double(replica.parkedResumed.load(ordering: .relaxed))))
            gauges.append(("switchauth_replica_heartbeat_max_seconds", "Slowest heartbeat round trip since start (PostgreSQL and the feed thread).", Double(replica.slowestHeartbeatNanoseconds.load(ordering: .relaxed)) / 1e9))
            gauges.append(("switchauth_replica_changes_applied", "Row changes applied to the copy from the feed.", Double(replica.changesApplied.load(ordering: .relaxed))))
            gauges.append(("switchauth_replica_devices", "SIP devices in the copy.", Double(replica.deviceCount)))
        }
        if let trust {
            gauges.append(("switchauth_trust_records_written", "Trust records of successes written in batches.", Double(trust.counters.written.load(ordering: .relaxed))))
            gauges.append(("switchauth_trust_records_dropped", "Trust records dropped with the queue full (the next success queues them again).", Double(trust.counters.dropped.load(ordering: .relaxed))))
            gauges.append(("switchauth_trust_records_queued", "Trust records waiting to be written.", Double(trust.queued)))
        }
        if let admissions = resolver.admissions {
            let g = admissions.gauges
            gauges.append(("switchauth_admissions_in_memory", "1 while this instance holds the call admissions in memory (the lease), else 0 (the database, or another instance, admits).", g.inMemory ? 1 : 0))
            gauges.append(("switchauth_admissions_slots", "Call slots in this instance's admission ledger (0 unless it holds them).", Double(g.slots)))
            gauges.append(("switchauth_admissions_unwritten", "Ledger changes not yet written to PostgreSQL (written every 5 ms).", Double(g.unwritten)))
            gauges.append(("switchauth_admissions_flushes", "Writes of the ledger's changes to PostgreSQL since start.", Double(g.flushes)))
            gauges.append(("switchauth_admissions_takeovers", "Times this instance took the admissions into memory.", Double(g.takeovers)))
        }
        // Counted by the prober each second: no request waits for the database here.
        gauges += health.lockoutGauges.map { ($0.name, $0.help, $0.value) }
        // The policy itself, so dashboards show what the counters are measured against.
        let p = config.lockout
        for (scope, budget) in [("source", p.sourceThreshold), ("source_user", p.threshold), ("user", p.userThreshold)] {
            gauges.append(("switchauth_lockout_budget{scope=\"\(scope)\"}", "Failures within the window that lock, by budget.", Double(budget)))
        }
        gauges.append(("switchauth_lockout_window_seconds", "Failure-counting window.", Double(p.windowSeconds)))
        gauges.append(("switchauth_lockout_duration_seconds", "Lockout length.", Double(p.lockSeconds)))
        gauges.append(("switchauth_lockout_trust_seconds", "How long a success keeps a source trusted for its user.", Double(p.trustSeconds)))
        for l in callListeners {
            gauges.append(("switchauth_call_listener_connected{switch=\"\(l.endpoint)\"}",
                           "1 while the hangup listener holds its event socket to the switch (call_limits = global), else 0: while 0, that switch's ended calls keep their slots until it is back.",
                           l.state.withLock { $0.connected } ? 1 : 0))
        }
        return resolver.metrics.render(gauges: gauges.map { (name: $0.0, help: $0.1, value: $0.2) })
    }
}
