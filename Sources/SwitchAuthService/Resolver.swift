import Decisions
import FreeSWITCHXML
import Foundation
import Logging
import Postgres
import Store
import Locking

/// The last acl.conf answer built from a complete read of the database. Served when PostgreSQL is
/// unavailable, because a failed acl.conf answer makes FreeSWITCH delete the list (PROTOCOL.md §6).
/// Optionally kept in a file so that it survives a restart.
public final class ACLCache: Sendable {
    private let body = Locked<[UInt8]?>(nil)
    private let file: String?

    public init(file: String?) {
        self.file = file
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
        // Write a temporary file and rename it: a crash never leaves a half-written list.
        let tmp = file + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: Data(bytes)) {
            _ = rename(tmp, file)
        }
    }
}

/// The result of one lookup: the XML to answer with, and what to log and count.
public struct LookupOutcome: Sendable {
    public var body: [UInt8]
    /// HTTP 200 unless nothing correct could be answered (acl.conf with no list at all).
    public var ok: Bool
    public var section: String
    public var reason: Reason
    public var metadata: Logger.Metadata
}

/// The request path after HTTP: form -> request -> facts from the store -> decision -> XML.
/// Owns no connection: the caller's (one per event loop) is passed in.
public struct Resolver: Sendable {
    public let config: ServiceConfig
    public let metrics: Metrics
    public let acl: ACLCache
    public let logger: Logger
    public let statistics: LockoutStatistics

    public init(config: ServiceConfig, metrics: Metrics, acl: ACLCache, logger: Logger, statistics: LockoutStatistics) {
        self.config = config
        self.metrics = metrics
        self.acl = acl
        self.logger = logger
        self.statistics = statistics
    }

    public func resolve(fields: FormFields, db: Connection?) -> LookupOutcome {
        let request: XMLCurlRequest
        do {
            request = try XMLCurlRequest(fields: fields)
        } catch {
            return hostile(error, section: "unknown")
        }
        switch request.section {
        case .directory: return directory(request, db: db)
        case .configuration: return configuration(request, db: db)
        case .dialplan: return dialplan(request, db: db)
        case .other(let name):
            return LookupOutcome(body: Documents.notFound, ok: true, section: "other", reason: .unsupported,
                                 metadata: ["section": .string(name)])
        }
    }

    private func hostile(_ error: HostileRequest, section: String) -> LookupOutcome {
        LookupOutcome(body: Documents.notFound, ok: true, section: section, reason: .hostileRequest,
                      metadata: ["field": .string(error.field), "problem": .string(error.problem)])
    }

    // MARK: Directory

    func directory(_ request: XMLCurlRequest, db: Connection?) -> LookupOutcome {
        let query: DirectoryQuery
        do {
            query = try DirectoryDecider.classify(request)
        } catch {
            return hostile(error, section: "directory")
        }
        var meta: Logger.Metadata = [:]
        let (user, domain, ip): (String, String, String?)
        switch query {
        case .unsupported(let what):
            return LookupOutcome(body: Documents.notFound, ok: true, section: "directory", reason: .unsupported,
                                 metadata: ["request": .string(what)])
        case let .user(u, d, action, sourceIP):
            (user, domain, ip) = (u, d, sourceIP)
            meta["request"] = .string(action ?? "lookup")
        case let .sipAuth(q):
            (user, domain, ip) = (q.user, q.domain, q.sourceIP)
            meta["request"] = .string("sip_auth")
            meta["method"] = .string((try? request.value("sip_auth_method")).flatMap { $0 } ?? "")
        }
        meta["user"] = .string(user)
        meta["domain"] = .string(domain)
        meta["ip"] = .string(ip ?? "")
        let validIP = ip.flatMap(IPAddress.init)?.description
        let facts: DirectoryFactsResult
        do {
            guard let db else { throw PostgresError(kind: .connection, operation: "connect", message: "no connection") }
            facts = try DirectoryLookup.run(db, domain: domain, user: user, source: LockoutKeys.source(validIP))
        } catch {
            metrics.databaseError()
            meta["error"] = .string("\(error)")
            // Fail closed: the domain without the user is a final not-found.
            return LookupOutcome(body: Documents.directory(.domainWithoutUser(domain: domain)), ok: true,
                                 section: "directory", reason: .databaseUnavailable, metadata: meta)
        }
        var q = query
        if case .sipAuth(var s) = q {
            s.sourceIP = validIP
            q = .sipAuth(s)
        }
        let decision = DirectoryDecider.decide(q, domainKnown: facts.domainKnown, device: facts.device,
                                               lockout: facts.lockout, policy: config.directory)
        if let device = facts.device { meta["account"] = .string(device.account.number) }
        apply(decision.effect, db: db, meta: &meta)
        return LookupOutcome(body: Documents.directory(decision.answer), ok: true, section: "directory",
                             reason: decision.reason, metadata: meta)
    }

    private func apply(_ effect: AuthEffect, db: Connection?, meta: inout Logger.Metadata) {
        guard let db else { return }
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
            }
        } catch {
            metrics.databaseError()
            meta["effect_error"] = .string("\(error)")
        }
    }

    // MARK: Configuration

    func configuration(_ request: XMLCurlRequest, db: Connection?) -> LookupOutcome {
        guard request.keyValue == "acl.conf" else {
            return LookupOutcome(body: Documents.notFound, ok: true, section: "configuration", reason: .notOwned,
                                 metadata: ["file": .string(request.keyValue)])
        }
        do {
            guard let db else { throw PostgresError(kind: .connection, operation: "connect", message: "no connection") }
            let networks = try ACLNetworksLookup.run(db)
            let body = Documents.acl(listName: config.aclListName, networks: networks)
            acl.store(body)
            return LookupOutcome(body: body, ok: true, section: "configuration", reason: .ok,
                                 metadata: ["file": "acl.conf", "networks": .stringConvertible(networks.count)])
        } catch {
            metrics.databaseError()
            if let cached = acl.lastGood {
                metrics.aclFromCache()
                return LookupOutcome(body: cached, ok: true, section: "configuration", reason: .databaseUnavailable,
                                     metadata: ["file": "acl.conf", "served": "last_known_good", "error": .string("\(error)")])
            }
            return LookupOutcome(body: Documents.notFound, ok: false, section: "configuration", reason: .databaseUnavailable,
                                 metadata: ["file": "acl.conf", "served": "nothing", "error": .string("\(error)")])
        }
    }

    // MARK: Dialplan

    func dialplan(_ request: XMLCurlRequest, db: Connection?) -> LookupOutcome {
        let query: DialplanQuery
        do {
            query = try DialplanDecider.classify(request, policy: config.dialplan)
        } catch {
            // In an owned context a hostile request is refused outright, never passed on.
            let context = (try? request.value("Hunt-Context")).flatMap { $0 } ?? ""
            if config.dialplan.ownedContexts.contains(context) {
                let d = DialplanDecider.reject(context, .hostileRequest, "\(error.field): \(error.problem)")
                return LookupOutcome(body: Documents.dialplan(d.answer, reason: d.reason), ok: true, section: "dialplan",
                                     reason: .hostileRequest, metadata: ["field": .string(error.field), "problem": .string(error.problem)])
            }
            return hostile(error, section: "dialplan")
        }
        var meta: Logger.Metadata = ["uuid": .string(((try? request.value("Unique-ID")) ?? nil) ?? "")]
        let decision: DialplanDecision
        do {
            switch query {
            case .notOwned(let context):
                return LookupOutcome(body: Documents.notFound, ok: true, section: "dialplan", reason: .notOwned,
                                     metadata: ["context": .string(context)])
            case let .ip(context, source, destination):
                meta["auth"] = "ip"
                meta["ip"] = .string(source)
                meta["destination"] = .string(destination)
                var candidates: [IPSettingFacts] = []
                if let address = IPAddress(source) {
                    guard let db else { throw PostgresError(kind: .connection, operation: "connect", message: "no connection") }
                    candidates = try IPCandidatesLookup.run(db, source: address)
                }
                decision = DialplanDecider.decideIP(context: context, source: source, destination: destination,
                                                    candidates: candidates, policy: config.dialplan)
            case let .digest(context, user, domain, destination):
                meta["auth"] = "digest"
                meta["user"] = .string(user)
                meta["domain"] = .string(domain)
                meta["destination"] = .string(destination)
                guard let db else { throw PostgresError(kind: .connection, operation: "connect", message: "no connection") }
                let facts = try DirectoryLookup.run(db, domain: domain, user: user, source: nil)
                decision = DialplanDecider.decideDigest(context: context, destination: destination, device: facts.device,
                                                        policy: config.dialplan)
            case let .unauthenticated(context, destination):
                meta["destination"] = .string(destination)
                decision = DialplanDecider.reject(context, .unauthenticated, "neither ACL nor digest authenticated")
            }
        } catch {
            metrics.databaseError()
            meta["error"] = .string("\(error)")
            let context: String
            switch query {
            case .ip(let c, _, _), .digest(let c, _, _, _), .unauthenticated(let c, _), .notOwned(let c): context = c
            }
            let d = DialplanDecider.reject(context, .databaseUnavailable, "database unavailable")
            return LookupOutcome(body: Documents.dialplan(d.answer, reason: d.reason), ok: true, section: "dialplan",
                                 reason: .databaseUnavailable, metadata: meta)
        }
        meta["detail"] = .string(decision.detail)
        switch decision.answer {
        case .reject(_, let r): meta["sip"] = .stringConvertible(r.code)
        case .allow(_, let a): meta["account"] = .string(a.account.number)
        case .notFound: break
        }
        return LookupOutcome(body: Documents.dialplan(decision.answer, reason: decision.reason), ok: true,
                             section: "dialplan", reason: decision.reason, metadata: meta)
    }
}
