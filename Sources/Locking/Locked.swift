#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a pthread mutex.
///
/// Used instead of `Synchronization.Mutex`, whose futex-based lock on Linux is not seen by
/// ThreadSanitizer (it reported every `withLock` as a race); pthread mutexes are intercepted, so
/// the suite can run clean under `--sanitize=thread`.
// @unchecked Sendable: `value` is only read or written inside `withLock`, between
// pthread_mutex_lock and pthread_mutex_unlock on `mutex`, which this object owns and destroys.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    @discardableResult
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

/// A value guarded by a pthread reader-writer lock: readers run together, a writer alone. Writers
/// are preferred (`PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP`), so that a steady stream of
/// overlapping readers cannot starve them. For data read on every request by several threads and
/// changed now and then (the memory copy).
// @unchecked Sendable: `value` is read only between pthread_rwlock_rdlock and unlock (and only
// through a borrowed, non-inout parameter), written only between pthread_rwlock_wrlock and unlock,
// on `lock`, which this object owns and destroys.
public final class ReadWriteLocked<Value>: @unchecked Sendable {
    @usableFromInline let lock: UnsafeMutablePointer<pthread_rwlock_t>
    /// Out of line; `read` and `write` are inlinable (unspecialized, the generic body copied the
    /// value through its witness table). A struct handed to `read`'s body is still copied before
    /// a call the compiler cannot see into (every field retained and released): a value read on
    /// every request is best a class, called in place (the memory copy's `ReplicaTables`, held
    /// here as `Unmanaged`).
    @usableFromInline let storage: UnsafeMutablePointer<Value>

    public init(_ value: Value) {
        storage = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        storage.initialize(to: value)
        lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        #if canImport(Glibc)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        #endif
        pthread_rwlock_init(lock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deinitialize(count: 1)
        lock.deallocate()
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    /// Shared: other readers may run at the same time.
    @inlinable
    public func read<R>(_ body: (Value) throws -> R) rethrows -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(storage.pointee)
    }

    /// Exclusive.
    @inlinable @discardableResult
    public func write<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(&storage.pointee)
    }
}
