import _CryptoExtras
import Crypto
import Decisions
import Foundation
import SystemCalls

/// Operators' passwords, API tokens and session identifiers. Passwords are hashed with scrypt from
/// swift-crypto (BoringSSL's implementation: memory-hard, not written here); tokens and session ids
/// are 256-bit random values, stored as their SHA-256 (a random secret of that size has nothing
/// to guess, so a fast hash is enough). Nothing here logs or returns a plaintext it was given.
public enum Secrets {
    /// scrypt cost: N = 2^logN, r, p. 2^15 * 8 * 128 bytes = 32 MiB; about 0.2 s per hash in a debug build here.
    public struct ScryptCost: Sendable, Equatable {
        public var logN: Int
        public var r: Int
        public var p: Int
        public init(logN: Int, r: Int, p: Int) {
            self.logN = logN
            self.r = r
            self.p = p
        }
        public static let standard = ScryptCost(logN: 15, r: 8, p: 1)
        var memory: Int { 128 * r * (1 << logN) + 128 * r * p + 1 << 20 }
    }

    public struct PasswordError: Error, CustomStringConvertible {
        public var description: String
    }

    /// `scrypt$<logN>$<r>$<p>$<salt b64>$<key b64>`.
    public static func hashPassword(_ password: String, cost: ScryptCost = .standard) throws -> String {
        let salt = RandomSecrets.bytes(16)
        let key = try derive(password, salt: salt, cost: cost)
        return "scrypt$\(cost.logN)$\(cost.r)$\(cost.p)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    /// Whether `password` matches `stored` (compared in constant time). A malformed hash never matches.
    public static func verifyPassword(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt",
              let logN = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              (10...20).contains(logN), (1...32).contains(r), (1...16).contains(p),
              let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5])),
              !expected.isEmpty
        else { return false }
        guard let key = try? derive(password, salt: [UInt8](salt), cost: ScryptCost(logN: logN, r: r, p: p), length: expected.count) else { return false }
        return Hashing.constantTimeEquals(key, [UInt8](expected))
    }

    /// A hash to verify against when the operator does not exist, so that a login for an unknown
    /// name costs the same time as one for a known name.
    public static let decoyHash: String = (try? hashPassword("decoy-\(UUID().uuidString)")) ?? "scrypt$15$8$1$AAAA$AAAA"

    static func derive(_ password: String, salt: [UInt8], cost: ScryptCost, length: Int = 32) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: length,
                                           rounds: 1 << cost.logN, blockSize: cost.r, parallelism: cost.p, maxMemory: cost.memory)
        return key.withUnsafeBytes { Array($0) }
    }

    public static func sha256Hex(_ s: String) -> String {
        SHA256.hash(data: Array(s.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Passwords of operators: 10 to 200 characters, no control characters.
    public static func checkOperatorPassword(_ p: String) throws {
        guard p.count >= 10 else { throw PasswordError(description: "operator password must be at least 10 characters") }
        guard p.count <= 200, !p.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) else {
            throw PasswordError(description: "operator password must be at most 200 characters without control characters")
        }
    }
}
