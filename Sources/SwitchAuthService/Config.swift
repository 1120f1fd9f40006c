import Decisions
import Foundation
import HTTPServer
import Postgres
import Store

/// A FreeSWITCH event socket to push `reloadacl` / `xml_flush_cache` to.
public struct EventSocketEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var password: String
    public init(host: String, port: UInt16, password: String) {
        self.host = host
        self.port = port
        self.password = password
    }
    public var description: String { "\(host):\(port)" }
}

/// Everything `serve` can be told. Every setting has a documented default (README, "Configuration").
public struct ServiceConfig: Sendable, Equatable {
    public var databaseURL = "postgresql:///switchauth"
    public var server = ServerConfig()
    /// The path mod_xml_curl posts to (all sections share it).
    public var path = "/freeswitch"
    public var directory = DirectoryPolicy()
    public var dialplan = DialplanPolicy()
    public var aclListName = "switchauth_ip"
    /// Brute-force budgets: part of the directory policy (the decision reads them).
    public var lockout: LockoutPolicy {
        get { directory.lockout }
        set { directory.lockout = newValue }
    }
    public var basicAuthUser: String?
    public var basicAuthPassword: String?
    /// Clients allowed to query; empty = any.
    public var allowClients: [IPNetwork] = []
    /// Default: the switch next to us (freeswitch-conf's event socket).
    public var eventSockets: [EventSocketEndpoint] = [EventSocketEndpoint(host: "127.0.0.1", port: 8021, password: ServiceConfig.defaultEventSocketPassword)]
    public var queryTimeoutMilliseconds = 500
    public var connectTimeoutMilliseconds = 1_000
    /// Where the last known good acl.conf is kept across restarts; nil = memory only.
    public var aclCacheFile: String?
    public var logLevel = "info"
    /// Serve on a non-loopback address without basic auth or an allowlist.
    public var forcePublic = false

    public init() {}

    /// Matches freeswitch-conf/autoload_configs/event_socket.conf.xml; operators change both.
    public static let defaultEventSocketPassword = "SwitchAuth-ESL-change-me"

    public var databaseConfig: ConnectionConfig {
        var c = ConnectionConfig.url(databaseURL)
        c.queryTimeoutMilliseconds = queryTimeoutMilliseconds
        c.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        c.reconnectBackoffMilliseconds = 200
        // Every statement on the request path is an indexed lookup. A plan cached while a table
        // was small (auth_failures starts empty) must not turn into a sequential scan once it
        // grows under a flood: seen in the benchmark, 1,000 bad digests/s made every lookup scan.
        c.sessionSettings = ["enable_seqscan=off"]
        return c
    }

    /// Every key, its default, and what it means: printed by `switchauth serve --help-config`.
    public static let reference: [(key: String, defaultValue: String, meaning: String)] = [
        ("database_url", "postgresql:///switchauth", "libpq URL or key=value conninfo of the database"),
        ("listen_host", "127.0.0.1", "address to listen on (IPv4 or IPv6; :: for all)"),
        ("listen_port", "8088", "TCP port"),
        ("path", "/freeswitch", "URL path mod_xml_curl posts to"),
        ("workers", "4", "event-loop threads, each with one database connection"),
        ("max_connections", "4096", "open connections at most; past it a fast 503"),
        ("request_timeout_ms", "5000", "deadline for a whole request (headers and body)"),
        ("idle_timeout_ms", "10000", "keep-alive idle timeout"),
        ("write_timeout_ms", "5000", "deadline for a response to be taken"),
        ("max_body_bytes", "262144", "largest request body (413 past it)"),
        ("query_timeout_ms", "500", "client and server deadline for one statement"),
        ("connect_timeout_ms", "1000", "deadline for connecting to PostgreSQL"),
        ("user_context", "switchauth", "user_context given to SIP devices"),
        ("owned_contexts", "switchauth", "dialplan contexts answered (comma-separated)"),
        ("ip_auth_profiles", "switchauth_ip", "sofia profiles whose calls are IP-authenticated"),
        ("routing_context", "switchauth_routing", "context allowed calls are transferred to"),
        ("acl_list", "switchauth_ip", "name of the acl.conf list"),
        ("cacheable_ms", "0", "cacheable on directory users in ms; 0 = off"),
        ("lockout_threshold", "10", "failed digests within the window that lock one source (IPv4 address or IPv6 /64) for one user"),
        ("lockout_source_threshold", "100", "failed digests (unknown users included) within the window that lock a source, except for users it is trusted for"),
        ("lockout_user_threshold", "100", "failed digests within the window, from all sources, that lock a user, except from sources trusted for it"),
        ("lockout_window_s", "300", "window for counting failures"),
        ("lockout_duration_s", "900", "how long a lockout lasts"),
        ("lockout_trust_s", "2592000", "a success keeps its source trusted for the user this long (exempt from source and user locks)"),
        ("basic_auth", "(none)", "user:password that mod_xml_curl's gateway-credentials must send"),
        ("allow_clients", "(any)", "comma-separated networks allowed to query"),
        ("event_sockets", "127.0.0.1:8021", "comma-separated host:port of FreeSWITCH event sockets; empty = none"),
        ("event_socket_password", ServiceConfig.defaultEventSocketPassword, "event-socket password (freeswitch-conf sets the same; change both)"),
        ("acl_cache_file", "(none)", "file keeping the last known good acl.conf across restarts"),
        ("log_level", "info", "trace, debug, info, notice, warning, error, critical"),
        ("force_public", "false", "allow a non-loopback listen address without basic_auth or allow_clients"),
    ]

    /// Parses `key = value` lines (# comments), then `SWITCHAUTH_<KEY>` environment variables, which win.
    public static func load(fileText: String?, environment: [String: String]) throws -> ServiceConfig {
        var pairs: [(key: String, value: String, origin: String)] = []
        if let fileText {
            for (n, raw) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let eq = line.firstIndex(of: "=") else {
                    throw ConfigError(message: "line \(n + 1): expected key = value")
                }
                let key = line[..<eq].trimmingCharacters(in: .whitespaces)
                var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                pairs.append((key, value, "line \(n + 1)"))
            }
        }
        for (k, v) in environment.sorted(by: { $0.key < $1.key }) where k.hasPrefix("SWITCHAUTH_") {
            let key = k.dropFirst("SWITCHAUTH_".count).lowercased()
            if ["migrations", "test_database_url"].contains(key) { continue }
            pairs.append((key, v, k))
        }
        var c = ServiceConfig()
        var esPassword = ServiceConfig.defaultEventSocketPassword
        var esHosts: [String]? = nil
        for (key, value, origin) in pairs {
            func int(_ range: ClosedRange<Int>) throws -> Int {
                guard let i = Int(value), range.contains(i) else {
                    throw ConfigError(message: "\(origin): \(key) must be a whole number in \(range.lowerBound)...\(range.upperBound)")
                }
                return i
            }
            func list() -> [String] {
                value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            switch key {
            case "database_url": c.databaseURL = value
            case "listen_host": c.server.host = value
            case "listen_port": c.server.port = UInt16(try int(0...65535))
            case "path":
                guard value.hasPrefix("/") else { throw ConfigError(message: "\(origin): path must start with /") }
                c.path = value
            case "workers": c.server.workers = try int(1...256)
            case "max_connections": c.server.maxConnections = try int(1...1_000_000)
            case "request_timeout_ms": c.server.requestTimeoutMilliseconds = try int(10...600_000)
            case "idle_timeout_ms": c.server.idleTimeoutMilliseconds = try int(10...3_600_000)
            case "write_timeout_ms": c.server.writeTimeoutMilliseconds = try int(10...600_000)
            case "max_body_bytes": c.server.limits.maxBodyBytes = try int(1024...(64 << 20))
            case "query_timeout_ms": c.queryTimeoutMilliseconds = try int(10...60_000)
            case "connect_timeout_ms": c.connectTimeoutMilliseconds = try int(10...60_000)
            case "user_context": c.directory.userContext = value
            case "owned_contexts": c.dialplan.ownedContexts = Set(list())
            case "ip_auth_profiles": c.dialplan.ipAuthProfiles = Set(list())
            case "routing_context": c.dialplan.routingContext = value
            case "acl_list": c.aclListName = value
            case "cacheable_ms":
                let ms = try int(0...86_400_000)
                c.directory.cacheableMilliseconds = ms == 0 ? nil : ms
            case "lockout_threshold": c.lockout.threshold = try int(1...1_000_000)
            case "lockout_source_threshold": c.lockout.sourceThreshold = try int(1...1_000_000)
            case "lockout_user_threshold": c.lockout.userThreshold = try int(1...1_000_000)
            case "lockout_trust_s": c.lockout.trustSeconds = try int(0...86_400 * 365)
            case "lockout_window_s": c.lockout.windowSeconds = try int(1...86_400 * 30)
            case "lockout_duration_s": c.lockout.lockSeconds = try int(1...86_400 * 365)
            case "basic_auth":
                guard let colon = value.firstIndex(of: ":"), colon != value.startIndex else {
                    throw ConfigError(message: "\(origin): basic_auth must be user:password")
                }
                c.basicAuthUser = String(value[..<colon])
                c.basicAuthPassword = String(value[value.index(after: colon)...])
            case "allow_clients":
                c.allowClients = try list().map { s in
                    guard let n = IPNetwork(s) else { throw ConfigError(message: "\(origin): \(s) is not an address or network") }
                    return n
                }
            case "event_sockets": esHosts = list()
            case "event_socket_password": esPassword = value
            case "acl_cache_file": c.aclCacheFile = value.isEmpty ? nil : value
            case "log_level": c.logLevel = value
            case "force_public": c.forcePublic = ["1", "true", "yes"].contains(value.lowercased())
            default:
                throw ConfigError(message: "\(origin): unknown setting '\(key)' (see switchauth serve --help-config)")
            }
        }
        let hosts = esHosts ?? c.eventSockets.map { "\($0.host.contains(":") ? "[\($0.host)]" : $0.host):\($0.port)" }
        c.eventSockets = try hosts.map { hp in
            guard let colon = hp.lastIndex(of: ":"), let port = UInt16(hp[hp.index(after: colon)...]) else {
                throw ConfigError(message: "event_sockets: \(hp) must be host:port")
            }
            var host = String(hp[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return EventSocketEndpoint(host: host, port: port, password: esPassword)
        }
        return c
    }

    /// Refuses a configuration that would hand password hashes to the network.
    public func validate() throws {
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(server.host) || server.host.hasPrefix("127.")
        if !loopback && basicAuthUser == nil && allowClients.isEmpty && !forcePublic {
            throw ConfigError(message: "listen_host \(server.host) is not loopback and neither basic_auth nor allow_clients is set: directory answers carry password hashes. Set one of them, or force_public = true.")
        }
        if dialplan.ownedContexts.contains(dialplan.routingContext) {
            throw ConfigError(message: "routing_context \(dialplan.routingContext) must not be one of owned_contexts (transfers would loop)")
        }
    }
}

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
