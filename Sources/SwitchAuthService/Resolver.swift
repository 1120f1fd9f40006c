import Decisions
import FreeSWITCHXML
import Foundation
import LogLines
import Logging
import Lookups
import Postgres
import Store
import Locking
import Synchronization
import SystemCalls

/// The last acl.conf answer built from a complete read of the database. Served when PostgreSQL is
/// unavailable, because a failed acl.conf answer makes FreeSWITCH delete the list (freeswitch-conf/PROTOCOL.md §6).
/// Optionally kept in a file so that it survives a restart.
public final class ACLCache: Sendable {
    private let body = Locked<[UInt8]?>(nil)
    private let file: String?
    /// Where a failed write of `file` is said (nil: tools that keep no file).
    private let logger: Logger?
    private let fileWriteFailed = Atomic<Bool>(false)
    /// Whether the last write of `file` failed: the file then holds an older list, or none.
    public var fileIsBehind: Bool { fileWriteFailed.load(ordering: .relaxed) }

    public init(file: String?, logger: Logger? = nil) {
        self.file = file
        self.logger = logger
        if let file, let data = FileManager.default.contents(atPath: file), !data.isEmpty {
            body.withLock { $0 = [UInt8](data) }
        }
    }

    public var lastGood: [UInt8]? { body.withLock { $0 } }

    public func store(_ bytes: [UInt8]) {
        let changed = body.withLock { current -> Bool in
            if current == bytes { return false }
            current = bytes
            return true
        }
        guard changed, let file else { return }
        do {
            // A crash or power loss at any moment leaves the old list or the new one, whole. The
            // file keeps its mode; its owner is the service's.
            try DurableFile.write(bytes, to: file, attributes: .init(mode: DurableFile.Attributes.of(file)?.mode ?? 0o644))
            if fileWriteFailed.exchange(false, ordering: .relaxed) {
                logger?.notice("acl_cache_file written again", metadata: ["file": .string(file)])
            }
        } catch {
            // The list in memory is current; only a restart with the database down would serve the
            // file's older one.
            fileWriteFailed.store(true, ordering: .relaxed)
            logger?.error("acl_cache_file not written: a restart while PostgreSQL is down would serve an older list",
                          metadata: ["file": .string(file), "error": .string(error.description)])
        }
    }
}

/// PostgreSQL as a facts source: what the lookup needs, in one statement over the caller's
/// connection (it never answers nil: a failure throws).
public struct DatabaseFacts: FactsSource {
    public let db: Connection
    public init(_ db: Connection) { self.db = db }

    public func facts(for lookup: Lookup) throws -> LookupFacts? {
        switch lookup {
        case .answered:
            return LookupFacts.none
        case .directory(_, let query):
            return .directory(try DirectoryLookup.run(db, domain: query.domain, user: query.user, source: LockoutKeys.countedSource(query.sourceIP)))
        case .acl:
            return .acl(try ACLNetworksLookup.run(db))
        case .dialplan(_, let query):
            switch query {
            case .ip(_, let source, _):
                guard let address = IPAddress(source) else { return .ipCandidates([]) }
                return .ipCandidates(try IPCandidatesLookup.run(db, source: address))
            case let .digest(_, user, domain, _):
                return .device(try DirectoryLookup.run(db, domain: domain, user: user, source: nil).device)
            case .notOwned, .unauthenticated:
                return LookupFacts.none
            }
        }
    }
}

/// The request path after HTTP, in one place for the service, `switchauth explain` and the fuzz
/// target: form -> request -> `classify` -> facts from the store -> decision -> XML (`resolve`), and
/// the answer when the facts cannot be had (`fallback`). Owns no connection: the caller's is passed in.
public struct Resolver: Sendable {
    public let config: ServiceConfig
    public let metrics: Metrics
    public let acl: ACLCache
    public let logger: Logger
    /// The logger's level, read once: asking the logger reads its handler through an existential
    /// box, retained and released on every lookup by every event loop.
    let logLevel: Logger.Level
    public let statistics: LockoutStatistics
    /// Where fraud levels passed are posted (nil: `fraud_webhook_url` unset; they are still logged).
    let fraudAlerts: FraudAlerts?
    /// The admissions in memory while this instance holds them (nil: `call_limits = switch`, or
    /// outside the service).
    let admissions: AdmissionAuthority?

    public init(config: ServiceConfig, metrics: Metrics, acl: ACLCache, logger: Logger, statistics: LockoutStatistics) {
        self.init(config: config, metrics: metrics, acl: acl, logger: logger, statistics: statistics, fraudAlerts: nil)
    }

    /// The service's decisions outside the service (`switchauth explain`, the console's "Explain a
    /// call", the fuzz target): the same configuration, its own metrics, no log lines, no acl.conf
    /// file and no fraud alerts. The one place such a resolver is assembled.
    public static func offline(_ config: ServiceConfig) -> Resolver {
        let logger = Logger(label: "switchauth.offline", factory: { _ in SwiftLogNoOpLogHandler() })
        return Resolver(config: config, metrics: Metrics(), acl: ACLCache(file: nil), logger: logger,
                        statistics: LockoutStatistics(config: config, logger: logger))
    }

    init(config: ServiceConfig, metrics: Metrics, acl: ACLCache, logger: Logger, statistics: LockoutStatistics, fraudAlerts: FraudAlerts?,
         admissions: AdmissionAuthority? = nil) {
        self.admissions = admissions
        self.config = config
        self.metrics = metrics
        self.acl = acl
        self.logger = logger
        logLevel = logger.logLevel
        self.statistics = statistics
        self.fraudAlerts = fraudAlerts
    }

    /// classify + resolve in one call (tests and tools that hold a connection).
    public func resolve(fields: FormFields, db: Connection?) -> LookupOutcome {
        resolve(classify(fields), db: db)
    }

    /// Everything decided without the database. Pure.
    public func classify(_ fields: FormFields) -> Lookup {
        let request: XMLCurlRequest
        do {
            request = try XMLCurlRequest(fields: fields)
        } catch {
            return .answered(hostile(error, section: "unknown"))
        }
        switch request.section {
        case .directory:
            let query: DirectoryQuery
            do {
                query = try DirectoryDecider.classify(request)
            } catch {
                return .answered(hostile(error, section: "directory"))
            }
            if case .unsupported(let what) = query {
                return .answered(LookupOutcome(body: Documents.notFound, ok: true, section: "directory", reason: .unsupported,
                                               metadata: ["request": .string(what)]))
            }
            return .directory(request, query)
        case .configuration:
            guard request.keyValue == "acl.conf" else {
                return .answered(LookupOutcome(body: Documents.notFound, ok: true, section: "configuration", reason: .notOwned,
                                               metadata: ["file": .string(request.keyValue)]))
            }
            return .acl
        case .dialplan:
            let query: DialplanQuery
            do {
                query = try DialplanDecider.classify(request, policy: config.dialplan)
            } catch {
                // In an owned context a hostile request is refused outright, never passed on.
                let context = (try? request.firstValue("Hunt-Context", "Caller-Context")).flatMap { $0 } ?? ""
                if config.dialplan.ownedContexts.contains(context) {
                    let d = DialplanDecider.reject(context, .hostileRequest, "\(error.field): \(error.problem)")
                    return .answered(LookupOutcome(body: Documents.dialplan(d.answer, reason: d.reason), ok: true, section: "dialplan",
                                                   reason: .hostileRequest, metadata: ["field": .string(error.field), "problem": .string(error.problem)]))
                }
                return .answered(hostile(error, section: "dialplan"))
            }
            switch query {
            case .notOwned(let context):
                return .answered(LookupOutcome(body: Documents.notFound, ok: true, section: "dialplan", reason: .notOwned,
                                               metadata: ["context": .string(context)]))
            case let .unauthenticated(context, destination):
                let d = DialplanDecider.reject(context, .unauthenticated, "neither ACL nor digest authenticated")
                return .answered(LookupOutcome(body: Documents.dialplan(d.answer, reason: d.reason), ok: true, section: "dialplan",
                                               reason: d.reason, metadata: ["destination": .string(destination), "sip": .stringConvertible(403)]))
            case .ip, .digest:
                return .dialplan(request, query)
            }
        case .other(let name):
            return .answered(LookupOutcome(body: Documents.notFound, ok: true, section: "other", reason: .unsupported,
                                           metadata: ["section": .string(name)]))
        }
    }

    /// facts -> decide -> effects, where the connection lives. A database failure answers the
    /// fallback (fail closed), with the error in the log line.
    /// `writer`: where effects are written when `db` is a standby (the primary); nil: `db`.
    public func resolve(_ lookup: Lookup, db: Connection?, writer: (() -> Connection)? = nil) -> LookupOutcome {
        if case .answered(let outcome) = lookup { return outcome }
        let facts: LookupFacts
        do {
            guard let db else { throw PostgresError(kind: .connection, operation: "connect", message: "no connection") }
            facts = try DatabaseFacts(db).facts(for: lookup) ?? LookupFacts.none
        } catch {
            metrics.databaseError()
            var outcome = fallback(lookup)
            outcome.metadata["error"] = .string("\(error)")
            if case .acl = lookup { metrics.aclFromCache() }
            return outcome
        }
        var (outcome, effect) = decide(lookup, facts)
        if case .admitCall(let admission, let decision) = effect {
            return admit(lookup, decision, admission, db: writer?() ?? db)
        }
        if case .acl = lookup, outcome.ok { acl.store(outcome.body) }
        if case .none = effect {
        } else if let target = writer?() ?? db {
            apply(effect, db: target, meta: &outcome.metadata)
        }
        return outcome
    }

    /// The decision over the facts and its XML, and what it asks to be recorded. Pure: the fuzz
    /// target and `switchauth explain` call it with the same facts the service would have.
    public func decide(_ lookup: Lookup, _ facts: LookupFacts) -> (LookupOutcome, AuthEffect) {
        switch (lookup, facts) {
        case (.answered(let outcome), _):
            return (outcome, .none)
        case let (.directory(request, query), .directory(f)):
            let decision = directoryDecision(query, f)
            var meta: LogFields = [:]
            if logs(decision.reason) {
                meta = directoryMetadata(request, query, account: f.device?.account.number)
            }
            return (LookupOutcome(body: Documents.directory(decision.answer), ok: true, section: "directory",
                                  reason: decision.reason, metadata: meta), decision.effect)
        case let (.acl, .acl(networks)):
            return (LookupOutcome(body: Documents.acl(listName: config.aclListName, networks: networks), ok: true, section: "configuration",
                                  reason: .ok, metadata: ["file": "acl.conf", "networks": .stringConvertible(networks.count)]), .none)
        case let (.dialplan(request, query), facts):
            var decision = dialplanDecision(query, facts)
            if case .allow = decision.answer {
                switch DialplanDecider.admission(for: decision, uniqueID: (try? request.value("Unique-ID")) ?? nil,
                                                 coreUUID: (try? request.value("Core-UUID")) ?? nil) {
                case .none: break
                case .admit(let a):
                    // Answered once admitted (`admitted`): its document and log fields are built
                    // then, so this outcome has neither (the document was built twice a limited call).
                    return (LookupOutcome(body: [], ok: true, section: "dialplan", reason: decision.reason, metadata: [:]),
                            .admitCall(a, decision))
                case .refuse(let d): decision = d
                }
            }
            return (dialplanOutcome(request, query, decision), .none)
        default:
            // Facts that do not belong to the lookup: a programming error; fail closed.
            return (fallback(lookup), .none)
        }
    }

    /// Admits an allowed call against the shared counters and answers accordingly; a database
    /// failure answers the fail-closed refusal (503).
    public func admit(_ lookup: Lookup, _ decision: DialplanDecision, _ admission: CallAdmission, db: Connection?) -> LookupOutcome {
        let deadline = MonotonicClock.now() + UInt64(config.answerTimeoutMilliseconds) * 1_000_000
        return admitted(lookup, decision, admission, admitShared(admission, db: db, deadline: deadline), db: db)
    }

    /// The shared counters' answer: the ledger's while this instance holds the admissions
    /// (`AdmissionAuthority`), else the database's (`CallSlots.admit`, on the primary); while
    /// another instance holds them, it is asked for them and the call is tried again every 5 ms
    /// until `deadline`.
    func admitShared(_ admission: CallAdmission, db: Connection?, deadline: UInt64) -> Result<CallSlots.Admission, any Error> {
        while true {
            if let admissions, let answer = admissions.admit(admission) { return .success(answer) }
            let result = Result<CallSlots.Admission, any Error> {
                guard let db else { throw PostgresError(kind: .connection, operation: "connect", message: "no connection") }
                return try CallSlots.admit(db, admission)
            }
            guard let admissions, let db else { return result }
            switch result {
            case .success:
                admissions.admittedInDatabase(db)
                return result
            case .failure(let error):
                guard error is CallSlots.AdmissionsInMemory else { return result }
                admissions.refusedByDatabase(db)
                guard MonotonicClock.now() + 5_000_000 < deadline else { return result }
                Syscall.sleep(nanoseconds: 5_000_000)
            }
        }
    }

    /// The answer to a call once the shared counters have answered (`result`: alone, or in a batch
    /// of admissions); `db` records a fraud level passed.
    public func admitted(_ lookup: Lookup, _ decision: DialplanDecision, _ admission: CallAdmission,
                         _ result: Result<CallSlots.Admission, any Error>, db: Connection?) -> LookupOutcome {
        guard case let .dialplan(request, query) = lookup else { return fallback(lookup) }
        let admitted: CallSlots.Admission
        do {
            admitted = try result.get()
        } catch {
            metrics.databaseError()
            metrics.callAdmission("error")
            var outcome = fallback(lookup)
            outcome.metadata["error"] = .string("\(error)")
            return outcome
        }
        switch admitted.verdict {
        case .admitted: metrics.callAdmission("admitted")
        case .alreadyHeld: metrics.callAdmission("held")
        case .channelLimit: metrics.callAdmission("channel_limit")
        case .cpsLimit: metrics.callAdmission("cps_limit")
        }
        var crossings = FraudCheck.crossings(admission.fraudThresholds, admitted.measurements)
        if !crossings.isEmpty, case .allow(_, let a) = decision.answer, let db {
            crossings = fraudActions(crossings, account: a.account, uniqueID: admission.uniqueID, db: db)
        }
        return dialplanOutcome(request, query, DialplanDecider.admitted(decision, admitted.verdict, fraud: crossings))
    }

    /// Records each level passed (a critical one suspends the account and frees the call's slot,
    /// in the database's transaction), and for the first call to pass it in its window: a warning
    /// line, the metric and the webhook. Returns the crossings that hold (a critical one whose
    /// suspension could not be written is not claimed: the call is refused all the same, fail closed).
    private func fraudActions(_ crossings: [FraudCrossing], account: AccountFacts, uniqueID: String, db: Connection) -> [FraudCrossing] {
        for c in crossings {
            // The suspension frees the call's slot: in the ledger first, when it is held here.
            if c.level == .critical { _ = admissions?.release([uniqueID]) }
            let first: Bool
            do {
                first = try CallSlots.recordFraud(db, accountID: account.id, c, uniqueID: uniqueID)
            } catch {
                metrics.databaseError()
                logger.error("fraud threshold passed but not recorded", metadata: [
                    "account": .string(account.number), "metric": .string(c.threshold.metric.rawValue), "level": .string(c.level.rawValue),
                    "error": .string("\(error)")])
                continue
            }
            guard first else { continue }
            metrics.fraudLevel(c.level.rawValue, metric: c.threshold.metric.rawValue)
            logger.warning(c.level == .critical ? "fraud threshold passed: account suspended" : "fraud threshold passed", metadata: [
                "account": .string(account.number), "metric": .string(c.threshold.metric.rawValue), "prefix": .string(c.threshold.prefix),
                "level": .string(c.level.rawValue), "value": .stringConvertible(c.value), "level_value": .stringConvertible(c.levelValue),
                "threshold": .stringConvertible(c.threshold.id), "uuid": .string(uniqueID)])
            fraudAlerts?.send(c, account: account, uniqueID: uniqueID)
        }
        return crossings
    }

    func dialplanOutcome(_ request: XMLCurlRequest, _ query: DialplanQuery, _ decision: DialplanDecision) -> LookupOutcome {
        var meta: LogFields = [:]
        if logs(decision.reason) {
            meta = dialplanMetadata(request, query)
            meta.set("detail", decision.detail)
            switch decision.answer {
            case .reject(_, let r): meta.set("sip", String(r.code))
            case .allow(_, let a): meta.set("account", a.account.number)
            case .notFound: break
            }
        }
        return LookupOutcome(body: Documents.dialplan(decision.answer, reason: decision.reason), ok: true,
                             section: "dialplan", reason: decision.reason, metadata: meta)
    }

    /// Whether the decision line of this reason is written at the configured level (the handler
    /// logs hostile requests and fail-closed answers at warning, the rest at info): its metadata
    /// is built only then.
    func logs(_ reason: Reason) -> Bool {
        logLevel <= (reason == .hostileRequest || reason == .databaseUnavailable ? .warning : .info)
    }

    /// The directory decision over its facts (pure; `decide` renders it).
    public func directoryDecision(_ query: DirectoryQuery, _ f: DirectoryFactsResult) -> DirectoryDecision {
        var q = query
        if case .sipAuth(var s) = q {
            s.sourceIP = s.sourceIP.flatMap(IPAddress.init)?.description
            q = .sipAuth(s)
        }
        return DirectoryDecider.decide(q, domainKnown: f.domainKnown, device: f.device, lockout: f.lockout, policy: config.directory)
    }

    /// The dialplan decision over its facts (pure; `decide` renders it).
    public func dialplanDecision(_ query: DialplanQuery, _ facts: LookupFacts) -> DialplanDecision {
        switch (query, facts) {
        case let (.ip(context, source, destination), .ipCandidates(candidates)):
            return DialplanDecider.decideIP(context: context, source: source, destination: destination,
                                            candidates: candidates, policy: config.dialplan)
        case let (.digest(context, _, _, destination), .device(device)):
            return DialplanDecider.decideDigest(context: context, destination: destination, device: device, policy: config.dialplan)
        case (.unauthenticated(let context, _), _):
            return DialplanDecider.reject(context, .unauthenticated, "neither ACL nor digest authenticated")
        case (.notOwned, _):
            return DialplanDecision(answer: .notFound, reason: .notOwned, detail: "")
        default:
            return DialplanDecider.reject(query.context, .databaseUnavailable, "facts of the wrong kind")
        }
    }

    /// The answer when the database cannot give the facts in time: fail closed. The directory answers
    /// the domain without the user (a final 403, never a user the database did not just confirm), the
    /// dialplan refuses with 503, acl.conf is the last known good list.
    public func fallback(_ lookup: Lookup) -> LookupOutcome {
        switch lookup {
        case .answered(let outcome):
            return outcome
        case let .directory(request, query):
            var meta = directoryMetadata(request, query)
            meta["served"] = "fail_closed"
            return LookupOutcome(body: Documents.directory(.domainWithoutUser(domain: query.domain)), ok: true,
                                 section: "directory", reason: .databaseUnavailable, metadata: meta)
        case .acl:
            if let cached = acl.lastGood {
                return LookupOutcome(body: cached, ok: true, section: "configuration", reason: .databaseUnavailable,
                                     metadata: ["file": "acl.conf", "served": "last_known_good"])
            }
            return LookupOutcome(body: Documents.notFound, ok: false, section: "configuration", reason: .databaseUnavailable,
                                 metadata: ["file": "acl.conf", "served": "nothing"])
        case let .dialplan(request, query):
            var meta = dialplanMetadata(request, query)
            meta["served"] = "fail_closed"
            let d = DialplanDecider.reject(query.context, .databaseUnavailable, "database unavailable")
            meta["sip"] = .stringConvertible(503)
            return LookupOutcome(body: Documents.dialplan(d.answer, reason: d.reason), ok: true, section: "dialplan",
                                 reason: .databaseUnavailable, metadata: meta)
        }
    }

    private func hostile(_ error: HostileRequest, section: String) -> LookupOutcome {
        LookupOutcome(body: Documents.notFound, ok: true, section: section, reason: .hostileRequest,
                      metadata: ["field": .string(error.field), "problem": .string(error.problem)])
    }

    // MARK: Directory

    func directoryMetadata(_ request: XMLCurlRequest, _ query: DirectoryQuery, account: String? = nil) -> LogFields {
        var meta = LogFields(capacity: 10) // these, the account, and what the handler adds
        // First: "account" sorts before every other key here.
        if let account { meta.set("account", account) }
        switch query {
        case .unsupported(let what):
            meta["request"] = .string(what)
        case let .user(u, d, action, sourceIP):
            meta["request"] = .string(action ?? "lookup")
            meta["user"] = .string(u)
            meta["domain"] = .string(d)
            meta["ip"] = .string(sourceIP ?? "")
        case let .sipAuth(q):
            // In key order: each one an append.
            meta.set("domain", q.domain)
            meta.set("ip", q.sourceIP ?? "")
            meta.set("method", (try? request.value("sip_auth_method")).flatMap { $0 } ?? "")
            meta.set("request", "sip_auth")
            meta.set("user", q.user)
        }
        return meta
    }

    private func apply(_ effect: AuthEffect, db: Connection, meta: inout LogFields) {
        do {
            switch effect {
            case .none:
                break
            case let .countFailure(source, user):
                // Counted now, in one statement, before the answer leaves: the next attempt (pipelined,
                // on another connection or at another instance) already sees a spent budget.
                let counted = try AuthFailures.countFailure(db, source: source, user: user, policy: config.lockout)
                statistics.noteCounted()
                for c in counted {
                    metrics.authFailure(scope: c.count.scope.label)
                    if c.crossed {
                        metrics.lockout(scope: c.count.scope.label)
                        logger.warning("locked out", metadata: [
                            "scope": .string(c.count.scope.label), "subject": .string(c.count.subject),
                            "failures": .stringConvertible(c.failures), "seconds": .stringConvertible(config.lockout.lockSeconds)])
                    }
                }
            case let .recordSuccess(source, user):
                try AuthFailures.recordSuccess(db, source: source, user: user)
            case .admitCall:
                break // admitted by `admit` before the answer is built
            }
        } catch {
            metrics.databaseError()
            meta["effect_error"] = .string("\(error)")
        }
    }

    // MARK: Dialplan

    func dialplanMetadata(_ request: XMLCurlRequest, _ query: DialplanQuery) -> LogFields {
        var meta = LogFields(capacity: 9) // these, and what the handler adds (section, reason, peer, served)
        switch query {
        case let .ip(_, source, destination):
            meta.set("auth", "ip")
            meta.set("destination", destination)
            meta.set("ip", source)
        case let .digest(_, user, domain, destination):
            meta.set("auth", "digest")
            meta.set("destination", destination)
            meta.set("domain", domain)
            meta.set("user", user)
        case let .unauthenticated(_, destination):
            meta["destination"] = .string(destination)
        case .notOwned(let context):
            meta["context"] = .string(context)
        }
        // Last: "uuid" sorts after every other key here, so each set above and this one append.
        meta.set("uuid", ((try? request.value("Unique-ID")) ?? nil) ?? "")
        return meta
    }
}
