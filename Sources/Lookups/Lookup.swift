/// The request path's values, pure: a lookup as classified, the facts it needs, its outcome, and
/// where facts come from (`FactsSource`). Shared by the service, `switchauth explain`, the console
/// and the fuzz target; nothing here reads a socket, a database or a clock.
import Decisions
import LogLines

/// The result of one lookup: the XML to answer with, and what to log and count.
public struct LookupOutcome: Sendable {
    public var body: [UInt8]
    /// HTTP 200 unless nothing correct could be answered (acl.conf with no list at all).
    public var ok: Bool
    public var section: String
    public var reason: Reason
    public var metadata: LogFields

    public init(body: [UInt8], ok: Bool, section: String, reason: Reason, metadata: LogFields) {
        (self.body, self.ok, self.section, self.reason, self.metadata) = (body, ok, section, reason, metadata)
    }
}

/// What a facts source (the database or the memory copy) said for one lookup.
public enum LookupFacts: Sendable {
    case none
    case directory(DirectoryFactsResult)
    case acl([String])
    case ipCandidates([IPSettingFacts])
    case device(DeviceFacts?)
}

/// A lookup after classification: either already answered (nothing in it needs the database), or
/// what to ask the database for. Classifying is pure and runs on the event loop; the facts, the
/// decision and the rendering run on a database thread (`resolve`).
public enum Lookup: Sendable {
    case answered(LookupOutcome)
    case directory(XMLCurlRequest, DirectoryQuery)
    case acl
    case dialplan(XMLCurlRequest, DialplanQuery)
}

/// Where a lookup's facts come from. Two sources: PostgreSQL (`DatabaseFacts`: one statement, on a
/// database thread) and the memory copy (`Replica`: no statement, only while provably current).
/// nil: this source cannot give them now (the copy is not current, or never holds them: acl.conf);
/// the service then asks the database.
public protocol FactsSource {
    func facts(for lookup: Lookup) throws -> LookupFacts?
}
