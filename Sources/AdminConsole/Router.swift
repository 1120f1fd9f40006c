import HTTPServer
import Store

/// One route of the console, a JSON API operation or a page: method, path template (`{name}`
/// matches one segment, percent-decoded), the least role that may call it (nil: no session or
/// token needed) and what it does. `API.routes` and `Pages.routes` are two lists of this one type,
/// matched by the one `Router`.
struct Route<Context>: Sendable {
    var method: String
    var template: String
    var role: Role?
    let run: @Sendable (Context) throws -> HTTPResponse

    init(_ method: String, _ template: String, role: Role?, _ run: @escaping @Sendable (Context) throws -> HTTPResponse) {
        self.method = method
        self.template = template
        self.role = role
        self.run = run
    }

    var parts: [String] { template.split(separator: "/").map(String.init) }

    /// The path parameters when `segments` fit the template.
    func match(_ segments: [String]) -> [String: String]? {
        let p = parts
        guard p.count == segments.count else { return nil }
        var params: [String: String] = [:]
        for (t, s) in zip(p, segments) {
            if t.hasPrefix("{") { params[String(t.dropFirst().dropLast())] = s } else if t != s { return nil }
        }
        return params
    }
}

enum Router {
    enum Found<Context> {
        case route(Route<Context>, params: [String: String])
        /// The path exists for other methods (405 with `Allow`).
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    /// The route for a method (HEAD is GET) and a path's segments.
    static func find<Context>(_ routes: [Route<Context>], method: String, segments: [String]) -> Found<Context> {
        let method = method == "HEAD" ? "GET" : method
        var allowed: [String] = []
        for route in routes {
            guard let params = route.match(segments) else { continue }
            if route.method == method { return .route(route, params: params) }
            allowed.append(route.method)
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed)
    }
}
