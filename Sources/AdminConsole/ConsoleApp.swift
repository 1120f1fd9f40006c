import Decisions
import Foundation
import HTTPServer
import Locking
import Logging
import Postgres
import Store
import SwitchAuthService
import SystemCalls

/// What the console is told: its listener, its database threads, and the decision policies that
/// "explain" must share with `serve` (read from the same configuration file).
public struct ConsoleSettings: Sendable {
    public var maxQueued = 64
    /// A request's answer deadline (a login spends ~0.1 s in scrypt).
    public var answerTimeoutMilliseconds = 10_000
    public var database: ConnectionConfig
    /// The services' configuration (the file `switchauth serve` reads): "Explain a call" decides
    /// with it, as they do; its `console` rows (`console_*`, flags applied) are the console's own
    /// listener, threads and sessions, read through the properties below.
    public var service = ServiceConfig()

    public var host: String { get { service.console.host } set { service.console.host = newValue } }
    public var port: UInt16 { get { service.console.port } set { service.console.port = newValue } }
    /// Event-loop threads: socket I/O only.
    public var workers: Int { get { service.console.workers } set { service.console.workers = newValue } }
    /// Database threads, each with its own connection; requests queue for them.
    public var databaseThreads: Int { get { service.console.databaseConnections } set { service.console.databaseConnections = newValue } }
    public var sessionSeconds: Int { get { service.console.sessionSeconds } set { service.console.sessionSeconds = newValue } }
    /// Mark cookies Secure (set when the console is served behind TLS).
    public var secureCookies: Bool { get { service.console.secureCookies } set { service.console.secureCookies = newValue } }
    /// Host names (without port) the console answers to besides loopback names and `host`. Anything
    /// else gets 421: a page that rebinds its own name to 127.0.0.1 (DNS rebinding) is not served.
    public var allowedHosts: [String] { get { service.console.allowedHosts } set { service.console.allowedHosts = newValue } }
    /// Addresses of the TLS proxies in front (`--trusted-proxy`): from them, the login throttle
    /// and the audit log take the client's address from the last `X-Forwarded-For` entry.
    public var trustedProxies: [String] { get { service.console.trustedProxies } set { service.console.trustedProxies = newValue } }
    /// The platform's currency (`currency` in the configuration file): balances are shown in it.
    public var currency: String { service.currency }
    /// A request that changed what the memory copies hold is answered this long after its commit
    /// (`replica_staleness_ms` + 5 when the services run copies), so that the change is in force on
    /// every instance when the operator sees it done (see the CLI's `waitUntilEveryCopyHolds`).
    /// nil: answered at once.
    public var changeInForceAfterMilliseconds: Int?

    public init(database: ConnectionConfig) {
        self.database = database
    }
}

/// The console's application: a request and a database connection in, a response out. Runs on the
/// console's database threads, never on an event loop.
public final class ConsoleApp: Sendable {
    public let settings: ConsoleSettings
    public let throttle: LoginThrottle
    public let logger: Logger
    /// What the page after a redirect shows once (Post/Redirect/Get), per session: a notice, and a
    /// generated device password. In memory only, taken by the next page, gone after 5 minutes.
    let flashes = Locked<[String: Flash]>([:])
    /// The dashboard's counts and when they were taken: at 1,000,000 devices they cost ~45 ms, so
    /// they are taken at most every `dashboardSeconds`, after any change made through this console,
    /// and on "Refresh now".
    let dashboardCache = Locked<(at: Double, value: ConsoleStore.Dashboard)?>(nil)
    static let dashboardSeconds = 15.0

    /// The dashboard's counts and their age in seconds.
    func dashboard(_ db: Connection, fresh: Bool = false) throws -> (ConsoleStore.Dashboard, age: Int) {
        let now = WallClock.seconds()
        if !fresh, let c = dashboardCache.withLock({ $0 }), now - c.at < Self.dashboardSeconds { return (c.value, Int(now - c.at)) }
        let d = try ConsoleStore(db: db).dashboard()
        dashboardCache.withLock { $0 = (now, d) }
        return (d, 0)
    }

    struct Flash: Sendable {
        var notice: String
        var secret: String?
        var secretOf: String?
        var expires: Double
    }

    public init(settings: ConsoleSettings, throttle: LoginThrottle = LoginThrottle(), logger: Logger = Logger(label: "switchauth.console")) {
        self.settings = settings
        self.throttle = throttle
        self.logger = logger
    }

    func setFlash(_ session: String, notice: String, secret: String? = nil, secretOf: String? = nil) {
        let now = WallClock.seconds()
        flashes.withLock { f in
            f = f.filter { $0.value.expires > now }
            f[session] = Flash(notice: notice, secret: secret, secretOf: secretOf, expires: now + 300)
        }
    }

    func takeFlash(_ session: String) -> Flash? {
        let now = WallClock.seconds()
        return flashes.withLock { f in
            guard let v = f.removeValue(forKey: session), v.expires > now else { return nil }
            return v
        }
    }

    /// The client's address: the peer, or behind a trusted proxy the address the proxy saw (the
    /// last `X-Forwarded-For` entry: the one the proxy appended, which the client cannot forge).
    public func source(of request: ConsoleRequest) -> String {
        guard settings.trustedProxies.contains(request.client), let xff = request.header("X-Forwarded-For") else { return request.client }
        let last = xff.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return IPAddress(last) != nil ? last : request.client
    }

    /// Whether the request's Host names this console (loopback, the listen address, or an allowed name).
    public func hostAllowed(_ request: ConsoleRequest) -> Bool {
        guard let host = request.header("Host") else { return true }   // HTTP/1.0 clients
        var name = host.lowercased()
        if name.hasPrefix("[") {
            name = String(name.dropFirst().prefix { $0 != "]" })
        } else if let colon = name.lastIndex(of: ":") {
            name = String(name[..<colon])
        }
        return ["127.0.0.1", "localhost", "::1", settings.host.lowercased()].contains(name) || name.hasPrefix("127.")
            || settings.allowedHosts.contains { $0.lowercased() == name }
    }

    public func handle(_ request: ConsoleRequest, db: Connection) -> HTTPResponse {
        guard hostAllowed(request) else { return Self.misdirected }
        // A change made here shows on the next dashboard at once (others', within dashboardSeconds).
        defer { if request.method != "GET" && request.method != "HEAD" { dashboardCache.withLock { $0 = nil } } }
        if request.path == API.prefix || request.path.hasPrefix(API.prefix + "/") {
            return API.handle(request, db: db, app: self)
        }
        return Pages.handle(request, db: db, app: self)
    }

    static let misdirected = Problem(status: 421, title: "Misdirected Request",
                                     detail: "this console does not answer to that Host name (see --allowed-host)").response

    /// Answers that need no database (the stylesheet and script, refusals of foreign Host names), on the loop.
    public func staticResponse(_ request: ConsoleRequest) -> HTTPResponse? {
        guard hostAllowed(request) else { return Self.misdirected }
        guard request.method == "GET" || request.method == "HEAD" else { return nil }
        switch request.path {
        case "/static/console.css":
            return HTTPResponse(status: .ok, contentType: "text/css; charset=utf-8", body: Array(Assets.css.utf8),
                                headers: [("Cache-Control", "max-age=300"), ("X-Content-Type-Options", "nosniff")])
        case "/static/console.js":
            return HTTPResponse(status: .ok, contentType: "text/javascript; charset=utf-8", body: Array(Assets.js.utf8),
                                headers: [("Cache-Control", "max-age=300"), ("X-Content-Type-Options", "nosniff")])
        case "/favicon.ico":
            return HTTPResponse(status: HTTPStatus(code: 204, reason: "No Content"), headers: [("Cache-Control", "max-age=86400")])
        default:
            return nil
        }
    }
}
