/// One part of a running service with a lifecycle: threads, pools, a listener. `stop()` must
/// return once the part has let go of everything it holds, and must be harmless when the part
/// never started or was stopped already.
public protocol Lifecycle: Sendable {
    func start() throws
    func stop()
}

/// A part given by two closures (a server whose start takes arguments, a prober that probes once first).
public struct LifecyclePart: Lifecycle {
    private let starting: @Sendable () throws -> Void
    private let stopping: @Sendable () -> Void

    public init(start: @escaping @Sendable () throws -> Void = {}, stop: @escaping @Sendable () -> Void) {
        starting = start
        stopping = stop
    }

    public func start() throws { try starting() }
    public func stop() { stopping() }
}

/// The service's parts in one place, in the spirit of swift-service-lifecycle's `ServiceGroup`:
/// started in the order given, stopped in the reverse order, so that a part is stopped only after
/// every part that may still use it (the HTTP server before the database threads its in-flight
/// lookups wait on, those before the prober). A part that fails to start stops those already
/// started (in reverse) and the failure is thrown. `stop()` stops what was started, once.
public final class ServiceGroup: Sendable {
    private struct State {
        var parts: [(name: String, part: any Lifecycle)] = []
        /// How many parts are started; nil once stopped.
        var started: Int? = 0
    }
    private let state = Locked(State())

    public init(_ parts: [(name: String, part: any Lifecycle)] = []) {
        state.withLock { $0.parts = parts }
    }

    /// The parts, given once before `start` (an owner whose parts capture it sets them at the end
    /// of its init).
    public func set(_ parts: [(name: String, part: any Lifecycle)]) {
        state.withLock { s in
            precondition(s.started == 0, "a service group's parts are set before it starts")
            s.parts = parts
        }
    }

    public var names: [String] { state.withLock { $0.parts.map(\.name) } }

    public func start() throws {
        let parts = state.withLock { $0.parts }
        for (i, (_, part)) in parts.enumerated() {
            guard state.withLock({ $0.started != nil }) else { return }
            do {
                try part.start()
            } catch {
                // The failed part may hold what it had taken before failing: it is stopped too.
                part.stop()
                stop()
                throw error
            }
            state.withLock { s in if s.started != nil { s.started = i + 1 } }
        }
    }

    /// Stops the started parts, last started first.
    public func stop() {
        let started = state.withLock { s -> ArraySlice<(name: String, part: any Lifecycle)> in
            defer { s.started = nil }
            return s.parts[0..<(s.started ?? 0)]
        }
        for (_, part) in started.reversed() { part.stop() }
    }
}
