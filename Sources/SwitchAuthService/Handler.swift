import Decisions
import Foundation
import HTTPServer
import Logging
import Postgres
import Store

/// HTTP in front of the resolver, one per event loop (so one database connection per loop).
/// Routes: `POST <path>` for mod_xml_curl (GET with a query string too), `GET /healthz`, `GET /metrics`.
public final class LookupHandler: RequestHandler {
    let resolver: Resolver
    let config: ServiceConfig
    let counters: ServerCounters
    let logger: Logger
    /// The loop's own connection: never shared, reconnected on demand with back-off.
    private let db: Connection
    private let expectedCredentials: [UInt8]?
    private let throttle: SharedBasicAuthThrottle

    public init(resolver: Resolver, counters: ServerCounters, throttle: SharedBasicAuthThrottle = SharedBasicAuthThrottle()) {
        self.resolver = resolver
        self.throttle = throttle
        self.config = resolver.config
        self.counters = counters
        self.logger = resolver.logger
        if let u = config.basicAuthUser, let p = config.basicAuthPassword {
            expectedCredentials = Array("\(u):\(p)".utf8)
        } else {
            expectedCredentials = nil
        }
        db = Connection(lazy: config.databaseConfig)
        if !db.isConnected {
            resolver.metrics.databaseError()
            logger.warning("database unavailable at start; answering fail-closed until it is back")
        }
    }

    public func shutdown() {
        db.close()
    }

    public func handle(_ request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        let started = DispatchTime.now().uptimeNanoseconds
        let path = request.head.path
        if !config.allowClients.isEmpty {
            guard let peer = IPAddress(context.peerHost), config.allowClients.contains(where: { $0.contains(peer) }) else {
                logger.warning("client not allowed", metadata: ["peer": .string(context.peerHost)])
                return finish(HTTPResponse(status: .forbidden, text: "client not allowed\n", close: true), section: "http", outcome: "forbidden", started: started)
            }
        }
        switch path {
        case "/healthz":
            guard request.head.method == "GET" || request.head.method == "HEAD" else { return methodNotAllowed("GET", started) }
            let healthy = db.healthCheck()
            return finish(HTTPResponse(status: healthy ? .ok : .serviceUnavailable, text: healthy ? "ok\n" : "database unavailable\n"),
                          section: "healthz", outcome: healthy ? "ok" : "database_unavailable", started: started)
        case "/metrics":
            guard request.head.method == "GET" else { return methodNotAllowed("GET", started) }
            if let refusal = authorize(request, context) { return refusal }
            return finish(HTTPResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                       body: Array(metricsText().utf8)), section: "metrics", outcome: "ok", started: started)
        case Substring(config.path):
            let form: [UInt8]
            switch request.head.method {
            case "POST":
                let type = request.head.header("Content-Type")?.lowercased() ?? ""
                guard type.hasPrefix("application/x-www-form-urlencoded") else {
                    return finish(HTTPResponse(status: .unsupportedMediaType, text: "expected application/x-www-form-urlencoded\n"),
                                  section: "http", outcome: "unsupported_media_type", started: started)
                }
                form = request.body
            case "GET":
                let parts = request.head.target.split(separator: "?", maxSplits: 1)
                form = parts.count == 2 ? Array(parts[1].utf8) : []
            default:
                return methodNotAllowed("GET, POST", started)
            }
            if let refusal = authorize(request, context) { return refusal }
            let outcome = resolver.resolve(fields: FormFields(FormDecoder.decode(form)), db: db)
            var meta = outcome.metadata
            meta["section"] = .string(outcome.section)
            meta["reason"] = .string(outcome.reason.rawValue)
            meta["peer"] = .string(context.peerHost)
            let level: Logger.Level = outcome.reason == .hostileRequest || outcome.reason == .databaseUnavailable ? .warning : .info
            logger.log(level: level, "decision", metadata: meta)
            let response = outcome.ok
                ? HTTPResponse(status: .ok, contentType: "text/xml", body: outcome.body)
                : HTTPResponse(status: .serviceUnavailable, text: "no acl.conf available\n")
            return finish(response, section: outcome.section, outcome: outcome.reason.rawValue, started: started)
        default:
            return finish(HTTPResponse(status: .notFound, text: "not found\n"), section: "http", outcome: "not_found", started: started)
        }
    }

    private func methodNotAllowed(_ allow: String, _ started: UInt64) -> HTTPResponse {
        finish(HTTPResponse(status: .methodNotAllowed, body: Array("method not allowed\n".utf8), headers: [("Allow", allow)]),
               section: "http", outcome: "method_not_allowed", started: started)
    }

    /// HTTP Basic auth as mod_xml_curl's `gateway-credentials` sends it; constant-time comparison;
    /// wrong or missing credentials are throttled per source (`BasicAuthThrottle`).
    private func authorize(_ request: HTTPRequest, _ context: RequestContext) -> HTTPResponse? {
        guard let expected = expectedCredentials else { return nil }
        let source = BasicAuthThrottle.source(peer: context.peerHost)
        let now = DispatchTime.now().uptimeNanoseconds
        if case .throttled(let seconds) = throttle.verdict(source: source, now: now) {
            resolver.metrics.basicAuth("throttled")
            resolver.metrics.observe(section: "http", outcome: "throttled", seconds: 0)
            return HTTPResponse(status: .tooManyRequests, body: Array("too many failed attempts\n".utf8),
                                headers: [("Retry-After", String(seconds))], close: true)
        }
        var given: [UInt8] = []
        if let header = request.head.header("Authorization") {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "basic",
               let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)) {
                given = [UInt8](data)
            }
        }
        if Hashing.constantTimeEquals(given, expected) { return nil }
        throttle.recordFailure(source: source, now: now)
        resolver.metrics.basicAuth("wrong")
        logger.warning("unauthorized client", metadata: ["peer": .string(context.peerHost)])
        resolver.metrics.observe(section: "http", outcome: "unauthorized", seconds: 0)
        return HTTPResponse(status: .unauthorized, body: Array("unauthorized\n".utf8),
                            headers: [("WWW-Authenticate", "Basic realm=\"switchauth\"")], close: true)
    }

    private func finish(_ response: HTTPResponse, section: String, outcome: String, started: UInt64) -> HTTPResponse {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        resolver.metrics.observe(section: section, outcome: outcome, seconds: seconds)
        return response
    }

    private func metricsText() -> String {
        var gauges: [(String, String, Double)] = [
            ("switchauth_open_connections", "Open client connections.", Double(counters.open.load(ordering: .relaxed))),
            ("switchauth_connections_accepted", "Connections accepted since start.", Double(counters.accepted.load(ordering: .relaxed))),
            ("switchauth_connections_rejected_over_limit", "Connections refused with 503 over max_connections.", Double(counters.rejectedOverLimit.load(ordering: .relaxed))),
            ("switchauth_connections_rejected_not_allowed", "Connections closed at accept: peer outside allow_clients.", Double(counters.rejectedNotAllowed.load(ordering: .relaxed))),
            ("switchauth_connections_timed_out", "Connections cut at a deadline with a request half received.", Double(counters.timedOut.load(ordering: .relaxed))),
            ("switchauth_http_parse_errors", "Requests refused by the HTTP parser.", Double(counters.parseErrors.load(ordering: .relaxed))),
        ]
        if let counts = try? AuthFailures.lockedCounts(db) {
            for scope in LockoutScope.allCases.sorted(by: { $0.label < $1.label }) {
                gauges.append(("switchauth_lockouts_active{scope=\"\(scope.label)\"}", "Subjects currently locked out, by budget.", Double(counts[scope] ?? 0)))
            }
        }
        if let n = try? AuthFailures.trustedCount(db, policy: config.lockout) {
            gauges.append(("switchauth_lockout_trusted_sources", "(source, user) pairs with a success within lockout_trust_s.", Double(n)))
        }
        // The policy itself, so dashboards show what the counters are measured against.
        let p = config.lockout
        for (scope, budget) in [("source", p.sourceThreshold), ("source_user", p.threshold), ("user", p.userThreshold)] {
            gauges.append(("switchauth_lockout_budget{scope=\"\(scope)\"}", "Failures within the window that lock, by budget.", Double(budget)))
        }
        gauges.append(("switchauth_lockout_window_seconds", "Failure-counting window.", Double(p.windowSeconds)))
        gauges.append(("switchauth_lockout_duration_seconds", "Lockout length.", Double(p.lockSeconds)))
        gauges.append(("switchauth_lockout_trust_seconds", "How long a success keeps a source trusted for its user.", Double(p.trustSeconds)))
        return resolver.metrics.render(gauges: gauges.map { (name: $0.0, help: $0.1, value: $0.2) })
    }
}
