import CSystemShims
import Foundation
import SystemCalls
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex with a condition variable: the one primitive the blocking queue and the thread lifecycle
/// are built on (pthread, so that ThreadSanitizer sees it).
// @unchecked Sendable: `value` is only touched between pthread_mutex_lock and pthread_mutex_unlock
// on `mutex` (in `withLock`, `wait`), which this object owns and destroys with `cond`.
public final class Monitor<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        cond.deinitialize(count: 1)
        cond.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    public enum Wake: Sendable { case none, one, all }

    /// Runs `body` under the lock, then wakes one waiter, all, or none.
    @discardableResult
    public func withLock<R>(wake: Wake = .all, _ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer {
            switch wake {
            case .none: break
            case .one: pthread_cond_signal(cond)
            case .all: pthread_cond_broadcast(cond)
            }
            pthread_mutex_unlock(mutex)
        }
        return try body(&value)
    }

    /// Waits until `ready(value)` holds (then runs `body` under the lock) or `timeoutNanoseconds`
    /// pass (then `body` is not run and nil is returned). nil timeout: wait as long as it takes.
    /// Wakes nobody: a change others wait for goes through `withLock`.
    public func wait<R>(until ready: (Value) -> Bool, timeoutNanoseconds: UInt64? = nil, _ body: (inout Value) -> R) -> R? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var deadline = timespec()
        if let t = timeoutNanoseconds {
            // The condition variable waits on CLOCK_MONOTONIC (set at init): MonotonicClock's.
            let at = MonotonicClock.now() &+ t
            deadline.tv_sec = Int(at / 1_000_000_000)
            deadline.tv_nsec = Int(at % 1_000_000_000)
        }
        while !ready(value) {
            if timeoutNanoseconds == nil {
                pthread_cond_wait(cond, mutex)
            } else if pthread_cond_timedwait(cond, mutex, &deadline) == ETIMEDOUT {
                if !ready(value) { return nil }
            }
        }
        return body(&value)
    }
}

/// A bounded first-in first-out queue for handing work to threads.
public final class BoundedQueue<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var head = 0
        var closed = false
        var count: Int { items.count - head }
    }

    public let capacity: Int
    private let state: Monitor<State>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        state = Monitor(State())
    }

    /// Adds `element` unless the queue is full (`beyondCapacity`: whatever its length) or closed;
    /// never waits.
    public func offer(_ element: Element, beyondCapacity: Bool = false) -> Bool {
        state.withLock(wake: .one) { s in
            guard !s.closed, beyondCapacity || s.count < capacity else { return false }
            s.items.append(element)
            return true
        }
    }

    /// The next element, waiting for one; nil once the queue is closed and empty.
    public func take() -> Element? {
        take(upTo: 1, joining: { _ in false })?.first
    }

    /// The next element, waiting for one, and if `joins` accepts it, the elements queued right
    /// behind it that `joins` also accepts (at most `limit` in all, order kept): a consumer that can
    /// serve several in one go takes them together. nil once the queue is closed and empty.
    public func take(upTo limit: Int, joining joins: (Element) -> Bool) -> [Element]? {
        state.wait(until: { $0.count > 0 || $0.closed }) { s -> [Element]? in
            guard s.count > 0 else { return nil }
            var out = [s.items[s.head]]
            s.head += 1
            if joins(out[0]) {
                while out.count < limit, s.count > 0, joins(s.items[s.head]) {
                    out.append(s.items[s.head])
                    s.head += 1
                }
            }
            if s.head > 64 && s.head * 2 > s.items.count {
                s.items.removeFirst(s.head)
                s.head = 0
            }
            return out
        } ?? nil
    }

    public var count: Int { state.withLock(wake: .none) { $0.count } }

    /// No more offers; takers drain what is queued, then get nil.
    public func close() {
        state.withLock { $0.closed = true }
    }
}

/// One background thread with a lifecycle that cannot hang: `stop()` before `start()` (or twice)
/// returns at once, and `start()` after `stop()` does nothing. The body is told to stop through
/// `isStopping` and `sleep(milliseconds:)`, which returns early when a stop is asked.
public final class BackgroundThread: Sendable {
    private enum Phase: Sendable { case idle, running, stopping, stopped }
    private let phase = Monitor<Phase>(.idle)
    public let name: String
    private let body: @Sendable (BackgroundThread) -> Void

    public init(name: String, body: @escaping @Sendable (BackgroundThread) -> Void) {
        self.name = name
        self.body = body
    }

    public func start() {
        let go = phase.withLock { p -> Bool in
            guard p == .idle else { return false }
            p = .running
            return true
        }
        guard go else { return }
        let thread = Thread { [self] in
            // The kernel's name for it (15 bytes), as `top -H`, `ps -L` and `perf` show it:
            // Foundation keeps `Thread.name` to itself on Linux.
            _ = sa_set_thread_name(name)
            body(self)
            phase.withLock { $0 = .stopped }
        }
        thread.name = name
        thread.start()
    }

    public var isStopping: Bool { phase.withLock(wake: .none) { $0 != .running } }

    /// Sleeps up to `milliseconds`; returns false early if a stop was asked.
    @discardableResult
    public func sleep(milliseconds: Int) -> Bool {
        phase.wait(until: { $0 != .running }, timeoutNanoseconds: UInt64(max(0, milliseconds)) * 1_000_000) { _ in () } == nil
    }

    /// Asks the body to return and waits until it has.
    public func stop() {
        let wait = phase.withLock { p -> Bool in
            switch p {
            case .idle, .stopped:
                p = .stopped
                return false
            case .running, .stopping:
                p = .stopping
                return true
            }
        }
        guard wait else { return }
        _ = phase.wait(until: { $0 == .stopped }) { _ in () }
    }
}

/// Lets a background thread's body reach the object that owns the thread without a retain cycle:
/// the owner creates the box, hands it to the thread's closure, then sets `owner` to itself.
public final class WeakOwner<Owner: AnyObject>: @unchecked Sendable {
    // @unchecked Sendable: `owner` is written once, in the owner's init, before the thread that
    // reads it is started (thread start is the happens-before edge).
    public weak var owner: Owner?
    public init() {}
}

/// A small number per thread, given at its first call (a thread-local slot): which shard of a
/// per-thread structure (log buffers, request counters) the thread uses, so that the event loops
/// do not meet on one lock for them.
public enum ThreadOrdinal {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        // No destructor: the slot holds a number, not memory.
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create")
        return key
    }()
    private static let next = Atomic<Int>(1)

    public static var current: Int {
        if let p = pthread_getspecific(key) { return Int(bitPattern: p) - 1 }
        let ordinal = next.wrappingAdd(1, ordering: .relaxed).oldValue
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: ordinal))
        return ordinal - 1
    }
}
