import Decisions
import Foundation
import HTTPServer
import Postgres

/// What the console is told: its listener, its database threads, and the decision policies that
/// "explain" must share with `serve` (read from the same configuration file).
public struct ConsoleSettings: Sendable {
    public var host = "127.0.0.1"
    public var port: UInt16 = 8089
    /// Event-loop threads: socket I/O only.
    public var workers = 2
    /// Database threads, each with its own connection; requests queue for them.
    public var databaseThreads = 2
    public var maxQueued = 64
    /// A request's answer deadline (a login spends ~0.1 s in scrypt).
    public var answerTimeoutMilliseconds = 10_000
    public var database: ConnectionConfig
    public var directory = DirectoryPolicy()
    public var dialplan = DialplanPolicy()
    public var sessionSeconds = 8 * 3600
    /// Mark cookies Secure (set when the console is served behind TLS).
    public var secureCookies = false
    public var scryptCost = Secrets.ScryptCost.standard
    /// Host names (without port) the console answers to besides loopback names and `host`. Anything
    /// else gets 421: a page that rebinds its own name to 127.0.0.1 (DNS rebinding) is not served.
    public var allowedHosts: [String] = []

    public init(database: ConnectionConfig) {
        self.database = database
    }
}

/// The console's application: a request and a database connection in, a response out. Runs on the
/// console's database threads, never on an event loop.
public final class ConsoleApp: Sendable {
    public let settings: ConsoleSettings
    public let throttle: LoginThrottle

    public init(settings: ConsoleSettings, throttle: LoginThrottle = LoginThrottle()) {
        self.settings = settings
        self.throttle = throttle
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
