import Decisions
import Foundation
import HTTPServer
import Logging
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

/// The operators' console (`switchauth console`): its listener, threads and sessions. Rows of the
/// one settings table (`console_*` keys) so that one file configures both commands; the console's
/// flags override them.
public struct ConsoleConfig: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port: UInt16 = 8089
    /// Event-loop threads: socket I/O only.
    public var workers = 2
    /// Database threads, each with its own connection; requests queue for them.
    public var databaseConnections = 2
    public var sessionSeconds = 8 * 3600
    /// Mark cookies Secure (a TLS proxy in front).
    public var secureCookies = false
    /// Host names (without port) answered besides loopback names and `host` (else 421).
    public var allowedHosts: [String] = []
    /// TLS proxies in front: from them the client's address is the last X-Forwarded-For entry.
    public var trustedProxies: [String] = []
    /// Scheduling niceness of the console's threads: the lookups keep the CPU first.
    public var nice = 10
    /// Listen on a non-loopback address (passwords cross it: TLS must be in front).
    public var forcePublic = false

    public init() {}

    public var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }
}

/// Everything `serve` can be told. Every setting has a documented default (README, "Configuration").
public struct ServiceConfig: Sendable, Equatable {
    public var databaseURL = "postgresql:///switchauth"
    public var server = ServerConfig()
    /// The path mod_xml_curl posts to (all sections share it).
    public var path = "/freeswitch"
    public var directory = DirectoryPolicy()
    /// Call limits are counted globally (the shared database, released by the switches' hangup
    /// events) unless `call_limits = switch`, or no event socket is configured and `call_limits` was
    /// not set.
    public var dialplan = DialplanPolicy(callLimits: .global)
    public var aclListName = "switchauth_ip"
    /// Brute-force budgets: part of the directory policy (the decision reads them).
    public var lockout: LockoutPolicy {
        get { directory.lockout }
        set { directory.lockout = newValue }
    }
    public var basicAuthUser: String?
    public var basicAuthPassword: String?
    /// The secret before the last `gateway-secret --rotate` (`user:password`), still accepted until
    /// `basicAuthPreviousUntil` (seconds since the epoch), so that no lookup is refused while the
    /// switches are reloaded with the new one.
    public var basicAuthPrevious: String?
    public var basicAuthPreviousUntil: Double?
    /// Clients allowed to query; empty = any.
    public var allowClients: [IPNetwork] = []
    /// Default: the switch next to us (freeswitch-conf's event socket).
    public var eventSockets: [EventSocketEndpoint] = [EventSocketEndpoint(host: "127.0.0.1", port: 8021, password: ServiceConfig.defaultEventSocketPassword)]
    /// Database threads, each with its own connection (the event loops never touch the database).
    public var databaseConnections = 4
    /// Lookups waiting for a database thread at most; past it the lookup is shed (HTTP 503, counted).
    public var maxQueuedLookups = 256
    /// A lookup's answer deadline, owned by the event loop: past it the fail-closed answer goes out.
    public var answerTimeoutMilliseconds = 200
    /// acl.conf's deadline for a fresh read; past it the last known good list goes out.
    public var aclTimeoutMilliseconds = 10
    public var queryTimeoutMilliseconds = 200
    public var connectTimeoutMilliseconds = 1_000
    public var probeIntervalMilliseconds = 250
    public var probeTimeoutMilliseconds = 100
    /// Answer directory and dialplan lookups from the in-memory copy while it is provably current.
    public var replica = true
    /// The copy answers only while proven at most this far behind the database.
    public var replicaStalenessMilliseconds = 250
    /// How often the copy proves itself current (a notification it sends itself).
    public var replicaHeartbeatMilliseconds = 20
    public var eventSocketPassword = ServiceConfig.defaultEventSocketPassword
    /// Where the last known good acl.conf is kept across restarts; nil = memory only.
    public var aclCacheFile: String?
    /// Where fraud levels passed are POSTed as JSON (http:// only); nil = logged and recorded only.
    public var fraudWebhookURL: String?
    public var logLevel = "info"
    /// The platform's currency (ISO 4217 code): the operators' console shows balances in it.
    public var currency = "USD"
    /// The operators' console's own settings (`console_*`); `serve` does not use them.
    public var console = ConsoleConfig()
    /// Serve on a non-loopback address without basic auth or an allowlist.
    public var forcePublic = false
    /// Serve without `basic_auth`: an explicit choice (directory answers carry password hashes, and
    /// any local process, or a request forgery from the switch host, could read them).
    public var allowUnauthenticated = false

    /// The value shipped in freeswitch-conf's xml_curl.conf.xml until `switchauth gateway-secret`
    /// replaces it; the service refuses to run with it.
    public static let placeholderSecret = "run-switchauth-gateway-secret"

    public init() {}

    /// Matches freeswitch-conf/autoload_configs/event_socket.conf.xml; operators change both.
    public static let defaultEventSocketPassword = "SwitchAuth-ESL-change-me"

    /// Where lookups read (a hot standby); empty: `databaseURL`. Writes (failure counts, the change
    /// watcher's LISTEN, operators) always go to `databaseURL`.
    public var readDatabaseURL = ""

    /// The connection for writes (and for reads when no standby is configured).
    public var databaseConfig: ConnectionConfig { connectionConfig(databaseURL) }

    /// The connection lookups read from.
    public var readDatabaseConfig: ConnectionConfig { connectionConfig(readDatabaseURL.isEmpty ? databaseURL : readDatabaseURL) }

    public var hasStandby: Bool { !readDatabaseURL.isEmpty && readDatabaseURL != databaseURL }

    func connectionConfig(_ url: String) -> ConnectionConfig {
        var c = ConnectionConfig.url(url)
        c.queryTimeoutMilliseconds = queryTimeoutMilliseconds
        c.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        c.reconnectBackoffMilliseconds = 200
        // Every statement on the request path is an indexed lookup. A plan cached while a table
        // was small (auth_failures starts empty) must not turn into a sequential scan once it
        // grows under a flood: seen in the benchmark, 1,000 bad digests/s made every lookup scan.
        // And no JIT: enable_seqscan=off prices the scan a one-row table still needs at 1e10, over
        // jit_above_cost, and PostgreSQL then compiled such a statement with LLVM at every
        // execution (milliseconds each; seen in a profile of the admissions' writes). Every
        // statement here is short: compiling never pays.
        c.sessionSettings = ["enable_seqscan=off", "jit=off"]
        return c
    }

    /// One setting: its key, what it means, how a text value is applied, and how the current value
    /// is shown. The defaults live in one place, the initial values above; `reference` (printed by
    /// `switchauth serve --help-config`) shows them from a default `ServiceConfig`, and a test checks
    /// the README's configuration table against `reference`.
    public struct Setting: Sendable {
        public let key: String
        public let meaning: String
        let apply: @Sendable (inout ServiceConfig, SettingValue) throws -> Void
        let show: @Sendable (ServiceConfig) -> String
    }

    /// A value being applied, with where it came from for error messages.
    struct SettingValue {
        let key: String
        let text: String
        let origin: String

        func int(_ range: ClosedRange<Int>) throws -> Int {
            guard let i = Int(text), range.contains(i) else {
                throw ConfigError(message: "\(origin): \(key) must be a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return i
        }

        func bool() throws -> Bool {
            switch text.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw ConfigError(message: "\(origin): \(key) must be true or false")
            }
        }

        var list: [String] {
            text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    static func intSetting(_ key: String, _ range: ClosedRange<Int>, _ meaning: String,
                           _ path: WritableKeyPath<ServiceConfig, Int> & Sendable) -> Setting {
        Setting(key: key, meaning: meaning, apply: { c, v in c[keyPath: path] = try v.int(range) },
                show: { String($0[keyPath: path]) })
    }

    static func stringSetting(_ key: String, _ meaning: String, _ path: WritableKeyPath<ServiceConfig, String> & Sendable) -> Setting {
        Setting(key: key, meaning: meaning, apply: { c, v in c[keyPath: path] = v.text }, show: { $0[keyPath: path] })
    }

    public static let settings: [Setting] = [
        stringSetting("database_url", "libpq URL or key=value conninfo of the database (writes; several hosts with target_session_attrs=read-write follow a promotion)", \.databaseURL),
        Setting(key: "read_database_url", meaning: "where lookups read, e.g. a hot standby (target_session_attrs=prefer-standby); empty: database_url",
                apply: { c, v in c.readDatabaseURL = v.text }, show: { $0.readDatabaseURL.isEmpty ? "(database_url)" : $0.readDatabaseURL }),
        stringSetting("listen_host", "address to listen on (IPv4 or IPv6; :: for all)", \.server.host),
        Setting(key: "listen_port", meaning: "TCP port",
                apply: { c, v in c.server.port = UInt16(try v.int(0...65535)) }, show: { String($0.server.port) }),
        Setting(key: "path", meaning: "URL path mod_xml_curl posts to", apply: { c, v in
            guard v.text.hasPrefix("/") else { throw ConfigError(message: "\(v.origin): path must start with /") }
            c.path = v.text
        }, show: { $0.path }),
        intSetting("workers", 0...256, "event-loop threads (socket I/O only); 0 = one per CPU core", \.server.workers),
        intSetting("database_connections", 1...256, "database threads, each with one PostgreSQL connection", \.databaseConnections),
        intSetting("max_queued_lookups", 1...1_000_000, "lookups waiting for a database thread at most; past it a lookup is shed with 503", \.maxQueuedLookups),
        intSetting("answer_timeout_ms", 10...60_000, "deadline for a lookup's answer; past it the fail-closed answer is sent", \.answerTimeoutMilliseconds),
        intSetting("acl_timeout_ms", 1...60_000, "deadline for acl.conf from the database; past it the last known good list is sent", \.aclTimeoutMilliseconds),
        intSetting("max_connections", 1...1_000_000, "open connections at most; past it a new connection evicts the longest-idle one (idle at least 250 ms, or of a source holding more) or gets a fast 503", \.server.maxConnections),
        intSetting("max_connections_per_source", 0...1_000_000, "open connections from one IPv4 address or IPv6 /64 at most; past it a fast 503; 0 = a quarter of max_connections", \.server.maxConnectionsPerSource),
        intSetting("first_byte_timeout_ms", 10...600_000, "a connection that has sent nothing of a request is closed this long after accept (if shorter than request_timeout_ms)", \.server.firstByteTimeoutMilliseconds),
        intSetting("send_buffer_bytes", 0...(64 << 20), "SO_SNDBUF of every connection: the kernel holds at most about twice this of unsent answers per connection; 0 = the kernel's autotuning", \.server.sendBufferBytes),
        intSetting("request_timeout_ms", 10...600_000, "deadline for a whole request (headers and body)", \.server.requestTimeoutMilliseconds),
        intSetting("idle_timeout_ms", 10...3_600_000, "keep-alive idle timeout", \.server.idleTimeoutMilliseconds),
        intSetting("write_timeout_ms", 10...600_000, "deadline for a response to be taken, from the first write that could not complete until all of it is written", \.server.writeTimeoutMilliseconds),
        intSetting("max_body_bytes", 1024...(64 << 20), "largest request body (413 past it)", \.server.limits.maxBodyBytes),
        intSetting("query_timeout_ms", 10...60_000, "client and server deadline for one statement", \.queryTimeoutMilliseconds),
        intSetting("connect_timeout_ms", 10...60_000, "deadline for connecting to PostgreSQL", \.connectTimeoutMilliseconds),
        intSetting("probe_interval_ms", 10...60_000, "how often the database is probed (5x as often while it is down)", \.probeIntervalMilliseconds),
        intSetting("probe_timeout_ms", 10...60_000, "deadline of one probe; a probe past it opens the circuit", \.probeTimeoutMilliseconds),
        Setting(key: "replica", meaning: "answer directory and dialplan lookups from the in-memory copy while it is provably current",
                apply: { c, v in c.replica = try v.bool() }, show: { String($0.replica) }),
        intSetting("replica_staleness_ms", 10...10_000, "the copy answers only while proven at most this far behind PostgreSQL; else lookups read PostgreSQL", \.replicaStalenessMilliseconds),
        intSetting("replica_heartbeat_ms", 1...5_000, "how often the copy proves itself current (a notification to itself); must be below replica_staleness_ms", \.replicaHeartbeatMilliseconds),
        Setting(key: "currency", meaning: "the platform's currency (ISO 4217 code, e.g. USD, EUR): the operators' console shows balances in it", apply: { c, v in
            guard v.text.count == 3, v.text.allSatisfy({ $0.isASCII && $0.isUppercase }) else { throw ConfigError(message: "\(v.origin): currency must be an ISO 4217 code such as USD or EUR") }
            c.currency = v.text
        }, show: { $0.currency }),
        stringSetting("console_listen_host", "address the operators' console listens on (switchauth console; --host); not loopback only with console_force_public", \.console.host),
        Setting(key: "console_listen_port", meaning: "the console's TCP port (--port)",
                apply: { c, v in c.console.port = UInt16(try v.int(0...65535)) }, show: { String($0.console.port) }),
        intSetting("console_workers", 1...64, "the console's event-loop threads (--workers)", \.console.workers),
        intSetting("console_database_connections", 1...64, "the console's database threads, each with one connection (--database-threads)", \.console.databaseConnections),
        intSetting("console_session_s", 300...(86_400 * 7), "how long an operator's console session lasts", \.console.sessionSeconds),
        Setting(key: "console_secure_cookies", meaning: "mark the console's cookies Secure (a TLS proxy in front; --secure-cookies)",
                apply: { c, v in c.console.secureCookies = try v.bool() }, show: { String($0.console.secureCookies) }),
        Setting(key: "console_allowed_hosts", meaning: "comma-separated Host names the console answers to besides loopback names and its address (--allowed-host), e.g. the TLS proxy's name",
                apply: { c, v in c.console.allowedHosts = v.list }, show: { $0.console.allowedHosts.isEmpty ? "(none)" : $0.console.allowedHosts.joined(separator: ",") }),
        Setting(key: "console_trusted_proxies", meaning: "comma-separated addresses of TLS proxies in front of the console (--trusted-proxy): from them the client is the last X-Forwarded-For entry", apply: { c, v in
            for p in v.list where IPAddress(p) == nil { throw ConfigError(message: "\(v.origin): console_trusted_proxies: \(p) is not an address") }
            c.console.trustedProxies = v.list
        }, show: { $0.console.trustedProxies.isEmpty ? "(none)" : $0.console.trustedProxies.joined(separator: ",") }),
        intSetting("console_nice", 0...19, "scheduling niceness of the console's threads (--nice): the lookups keep the CPU first", \.console.nice),
        Setting(key: "console_force_public", meaning: "let the console listen on a non-loopback address (--force-public; put TLS in front)",
                apply: { c, v in c.console.forcePublic = try v.bool() }, show: { String($0.console.forcePublic) }),
        stringSetting("user_context", "user_context given to SIP devices", \.directory.userContext),
        Setting(key: "owned_contexts", meaning: "dialplan contexts answered (comma-separated)",
                apply: { c, v in c.dialplan.ownedContexts = Set(v.list) }, show: { $0.dialplan.ownedContexts.sorted().joined(separator: ",") }),
        Setting(key: "ip_auth_profiles", meaning: "sofia profiles whose calls are IP-authenticated",
                apply: { c, v in c.dialplan.ipAuthProfiles = Set(v.list) }, show: { $0.dialplan.ipAuthProfiles.sorted().joined(separator: ",") }),
        stringSetting("routing_context", "context allowed calls are transferred to", \.dialplan.routingContext),
        Setting(key: "call_limits", meaning: "where max_channels and max_cps are counted: global (across every switch and instance, in the database; needs event_sockets, whose hangup events release the slots) or switch (max_channels by each switch's limit hash, max_cps not enforced); default global, switch when event_sockets is empty", apply: { c, v in
            guard let scope = CallLimitScope(rawValue: v.text) else {
                throw ConfigError(message: "\(v.origin): call_limits must be global or switch")
            }
            c.dialplan.callLimits = scope
        }, show: { $0.dialplan.callLimits.rawValue }),
        stringSetting("acl_list", "name of the acl.conf list", \.aclListName),
        Setting(key: "cacheable_ms", meaning: "cacheable on directory users in ms; 0 = off", apply: { c, v in
            let ms = try v.int(0...86_400_000)
            c.directory.cacheableMilliseconds = ms == 0 ? nil : ms
        }, show: { String($0.directory.cacheableMilliseconds ?? 0) }),
        intSetting("lockout_threshold", 1...1_000_000, "failed digests within the window that lock one source (IPv4 address or IPv6 /64) for one user", \.lockout.threshold),
        intSetting("lockout_source_threshold", 1...1_000_000, "failed digests (unknown users included) within the window that lock a source, except for users it is trusted for", \.lockout.sourceThreshold),
        intSetting("lockout_user_threshold", 1...1_000_000, "failed digests within the window, from all sources, that lock a user, except from sources trusted for it", \.lockout.userThreshold),
        intSetting("lockout_window_s", 1...(86_400 * 30), "window for counting failures", \.lockout.windowSeconds),
        intSetting("lockout_duration_s", 1...(86_400 * 365), "how long a lockout lasts", \.lockout.lockSeconds),
        intSetting("lockout_trust_s", 0...(86_400 * 365), "a success keeps its source trusted for the user this long (exempt from source and user locks)", \.lockout.trustSeconds),
        Setting(key: "basic_auth", meaning: "user:password that mod_xml_curl's gateway-credentials must send", apply: { c, v in
            guard let colon = v.text.firstIndex(of: ":"), colon != v.text.startIndex else {
                throw ConfigError(message: "\(v.origin): basic_auth must be user:password")
            }
            c.basicAuthUser = String(v.text[..<colon])
            c.basicAuthPassword = String(v.text[v.text.index(after: colon)...])
        }, show: { $0.basicAuthUser == nil ? "(none)" : "(set)" }),
        Setting(key: "basic_auth_previous", meaning: "the secret before the last gateway-secret --rotate, accepted until basic_auth_previous_until", apply: { c, v in
            guard v.text.isEmpty || (v.text.firstIndex(of: ":").map { $0 != v.text.startIndex } ?? false) else {
                throw ConfigError(message: "\(v.origin): basic_auth_previous must be user:password")
            }
            c.basicAuthPrevious = v.text.isEmpty ? nil : v.text
        }, show: { $0.basicAuthPrevious == nil ? "(none)" : "(set)" }),
        Setting(key: "basic_auth_previous_until", meaning: "UTC time (2026-12-05T10:00:00Z) until which basic_auth_previous is accepted; written by gateway-secret --rotate", apply: { c, v in
            guard !v.text.isEmpty else { c.basicAuthPreviousUntil = nil; return }
            let f = ISO8601DateFormatter()
            guard let date = f.date(from: v.text) else {
                throw ConfigError(message: "\(v.origin): basic_auth_previous_until must be a UTC time such as 2026-12-05T10:00:00Z")
            }
            c.basicAuthPreviousUntil = date.timeIntervalSince1970
        }, show: { c in
            c.basicAuthPreviousUntil.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) } ?? "(none)"
        }),
        Setting(key: "allow_clients", meaning: "comma-separated networks allowed to query", apply: { c, v in
            c.allowClients = try v.list.map { s in
                guard let n = IPNetwork(s) else { throw ConfigError(message: "\(v.origin): \(s) is not an address or network") }
                return n
            }
        }, show: { $0.allowClients.isEmpty ? "(any)" : $0.allowClients.map(\.description).joined(separator: ",") }),
        Setting(key: "event_sockets", meaning: "comma-separated host:port of FreeSWITCH event sockets; empty = none", apply: { c, v in
            let password = c.eventSockets.first?.password ?? c.eventSocketPassword
            c.eventSockets = try v.list.map { hp in
                guard let colon = hp.lastIndex(of: ":"), let port = UInt16(hp[hp.index(after: colon)...]) else {
                    throw ConfigError(message: "\(v.origin): event_sockets: \(hp) must be host:port")
                }
                var host = String(hp[..<colon])
                if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
                return EventSocketEndpoint(host: host, port: port, password: password)
            }
        }, show: { $0.eventSockets.map { "\($0.host.contains(":") ? "[\($0.host)]" : $0.host):\($0.port)" }.joined(separator: ",") }),
        Setting(key: "event_socket_password", meaning: "event-socket password (freeswitch-conf sets the same; change both)", apply: { c, v in
            c.eventSocketPassword = v.text
            for i in c.eventSockets.indices { c.eventSockets[i].password = v.text }
        }, show: { $0.eventSocketPassword }),
        Setting(key: "fraud_webhook_url", meaning: "http://host[:port]/path that each fraud level passed is POSTed to as JSON (http only: use a local relay for https); empty = logged and recorded only", apply: { c, v in
            guard !v.text.isEmpty else { c.fraudWebhookURL = nil; return }
            guard FraudAlerts.isValidURL(v.text) else {
                throw ConfigError(message: "\(v.origin): fraud_webhook_url must be http://host[:port]/path")
            }
            c.fraudWebhookURL = v.text
        }, show: { $0.fraudWebhookURL ?? "(none)" }),
        Setting(key: "acl_cache_file", meaning: "file keeping the last known good acl.conf across restarts",
                apply: { c, v in c.aclCacheFile = v.text.isEmpty ? nil : v.text }, show: { $0.aclCacheFile ?? "(none)" }),
        Setting(key: "log_level", meaning: "trace, debug, info, notice, warning, error, critical",
                apply: { c, v in
                    // A typo must not pass for the default: `warn` would otherwise log every decision.
                    guard let level = Logger.Level(rawValue: v.text.lowercased()) else {
                        throw ConfigError(message: "\(v.origin): log_level must be one of trace, debug, info, notice, warning, error, critical (got '\(v.text)')")
                    }
                    c.logLevel = level.rawValue
                }, show: { $0.logLevel }),
        Setting(key: "force_public", meaning: "allow a non-loopback listen address without basic_auth or allow_clients",
                apply: { c, v in c.forcePublic = try v.bool() }, show: { String($0.forcePublic) }),
        Setting(key: "allow_unauthenticated", meaning: "serve without basic_auth (an explicit choice; refused otherwise)",
                apply: { c, v in c.allowUnauthenticated = try v.bool() }, show: { String($0.allowUnauthenticated) }),
    ]

    /// Every key, its default, and what it means: printed by `switchauth serve --help-config`.
    public static var reference: [(key: String, defaultValue: String, meaning: String)] {
        let d = ServiceConfig()
        return settings.map { ($0.key, $0.show(d), $0.meaning) }
    }

    /// Parses `key = value` lines (# comments), then `SWITCHAUTH_<KEY>` environment variables, which win.
    public static func load(fileText: String?, environment: [String: String]) throws -> ServiceConfig {
        var pairs: [SettingValue] = []
        if let fileText {
            // A key given twice is refused: which one was meant cannot be known (the environment
            // overriding the file is the one intended override).
            var firstLine: [String: Int] = [:]
            for (n, raw) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let eq = line.firstIndex(of: "=") else {
                    throw ConfigError(message: "line \(n + 1): expected key = value")
                }
                let key = line[..<eq].trimmingCharacters(in: .whitespaces)
                if let first = firstLine[key] {
                    throw ConfigError(message: "line \(n + 1): \(key) is already set on line \(first); keep one of the two")
                }
                firstLine[key] = n + 1
                var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                pairs.append(SettingValue(key: key, text: value, origin: "line \(n + 1)"))
            }
        }
        for (k, v) in environment.sorted(by: { $0.key < $1.key }) where k.hasPrefix("SWITCHAUTH_") {
            let key = k.dropFirst("SWITCHAUTH_".count).lowercased()
            if ["migrations", "test_database_url"].contains(key) { continue }
            pairs.append(SettingValue(key: key, text: v, origin: k))
        }
        // The password applies to every socket whatever the order the two keys came in.
        pairs.sort { ($0.key == "event_socket_password" ? 1 : 0) < ($1.key == "event_socket_password" ? 1 : 0) }
        var c = ServiceConfig()
        let byKey = Dictionary(uniqueKeysWithValues: settings.map { ($0.key, $0) })
        for v in pairs {
            guard let setting = byKey[v.key] else {
                throw ConfigError(message: "\(v.origin): unknown setting '\(v.key)' (see switchauth serve --help-config)")
            }
            try setting.apply(&c, v)
        }
        // Without an event socket no hangup could release a slot: unless asked for, limits stay per
        // switch; asked for, it is an error.
        if c.eventSockets.isEmpty {
            if let asked = pairs.last(where: { $0.key == "call_limits" }), c.dialplan.callLimits == .global {
                throw ConfigError(message: "\(asked.origin): call_limits = global needs event_sockets: the switches' hangup events release the call slots. List every switch's event socket, or set call_limits = switch.")
            }
            c.dialplan.callLimits = .perSwitch
        }
        return c
    }

    /// Refuses a configuration that would hand password hashes to the network.
    public func validate() throws {
        if basicAuthUser == nil && !allowUnauthenticated {
            throw ConfigError(message: "basic_auth is not set: directory answers carry password hashes, readable by any process that can reach \(server.host):\(server.port). Run 'switchauth gateway-secret --config <this file> --freeswitch-conf /etc/freeswitch' to generate a secret and write it here and into FreeSWITCH's xml_curl.conf.xml, or set allow_unauthenticated = true.")
        }
        if let p = basicAuthPassword, p.contains(Self.placeholderSecret) {
            throw ConfigError(message: "basic_auth still holds the shipped placeholder: run 'switchauth gateway-secret' to generate a secret.")
        }
        if (basicAuthPrevious == nil) != (basicAuthPreviousUntil == nil) {
            throw ConfigError(message: "basic_auth_previous and basic_auth_previous_until go together (switchauth gateway-secret --rotate writes both)")
        }
        if let p = basicAuthPassword, p.count < 16 {
            throw ConfigError(message: "basic_auth's password is shorter than 16 characters: run 'switchauth gateway-secret' to generate one.")
        }
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(server.host) || server.host.hasPrefix("127.")
        if !loopback && basicAuthUser == nil && allowClients.isEmpty && !forcePublic {
            throw ConfigError(message: "listen_host \(server.host) is not loopback and neither basic_auth nor allow_clients is set: directory answers carry password hashes. Set one of them, or force_public = true.")
        }
        if replica && replicaHeartbeatMilliseconds * 2 > replicaStalenessMilliseconds {
            throw ConfigError(message: "replica_heartbeat_ms (\(replicaHeartbeatMilliseconds)) must be at most half of replica_staleness_ms (\(replicaStalenessMilliseconds)): otherwise the copy cannot prove itself current between heartbeats")
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
