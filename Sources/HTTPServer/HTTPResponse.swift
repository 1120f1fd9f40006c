public struct HTTPStatus: Sendable, Equatable {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    public static let ok = HTTPStatus(code: 200, reason: "OK")
    public static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    public static let unauthorized = HTTPStatus(code: 401, reason: "Unauthorized")
    public static let forbidden = HTTPStatus(code: 403, reason: "Forbidden")
    public static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    public static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    public static let requestTimeout = HTTPStatus(code: 408, reason: "Request Timeout")
    public static let payloadTooLarge = HTTPStatus(code: 413, reason: "Payload Too Large")
    public static let uriTooLong = HTTPStatus(code: 414, reason: "URI Too Long")
    public static let unsupportedMediaType = HTTPStatus(code: 415, reason: "Unsupported Media Type")
    public static let expectationFailed = HTTPStatus(code: 417, reason: "Expectation Failed")
    public static let tooManyRequests = HTTPStatus(code: 429, reason: "Too Many Requests")
    public static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431, reason: "Request Header Fields Too Large")
    public static let internalServerError = HTTPStatus(code: 500, reason: "Internal Server Error")
    public static let notImplemented = HTTPStatus(code: 501, reason: "Not Implemented")
    public static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")
    public static let httpVersionNotSupported = HTTPStatus(code: 505, reason: "HTTP Version Not Supported")
}

public struct HTTPResponse: Sendable, Equatable {
    public var status: HTTPStatus
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(name: String, value: String)]
    /// Close the connection after this response.
    public var close: Bool

    public init(status: HTTPStatus, contentType: String = "text/plain; charset=utf-8", body: [UInt8] = [],
                headers: [(name: String, value: String)] = [], close: Bool = false) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
        self.close = close
    }

    public init(status: HTTPStatus, text: String, close: Bool = false) {
        self.init(status: status, body: Array(text.utf8), close: close)
    }

    public static func == (a: HTTPResponse, b: HTTPResponse) -> Bool {
        a.status == b.status && a.contentType == b.contentType && a.body == b.body && a.close == b.close
            && a.headers.count == b.headers.count && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// Serializes status line, headers and body. `headOnly` (the answer to HEAD): the headers GET
    /// would get, Content-Length included, and no body.
    public func serialize(keepAlive: Bool, headOnly: Bool = false, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + 160 + body.count)
        // Byte by byte rather than interpolated: no intermediate strings on the answer path.
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        Self.appendDecimal(status.code, to: &out)
        out.append(32)
        out.append(contentsOf: status.reason.utf8)
        out.append(contentsOf: "\r\nContent-Type: ".utf8)
        out.append(contentsOf: contentType.utf8)
        out.append(contentsOf: "\r\nContent-Length: ".utf8)
        Self.appendDecimal(body.count, to: &out)
        out.append(contentsOf: "\r\n".utf8)
        for h in headers {
            out.append(contentsOf: h.name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: h.value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        out.append(contentsOf: (keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n").utf8)
        if !headOnly { out.append(contentsOf: body) }
    }

    /// A decimal of at most 15 digits is a small String: no heap storage.
    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }
}
