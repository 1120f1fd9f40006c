import Foundation

/// The raw requests captured from a real FreeSWITCH (Tests/SwitchAuthTests/Fixtures), read by path so
/// that every test target can replay them byte for byte.
public enum Fixtures {
    public static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../SwitchAuthTests/Fixtures").standardized
    }

    public static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    public static var httpFiles: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".http") }.sorted()
    }

    /// The body of a captured request.
    public static func body(_ name: String) throws -> [UInt8] {
        let all = try bytes(name)
        let sep: [UInt8] = [13, 10, 13, 10]
        var i = 0
        while i + 4 <= all.count {
            if Array(all[i..<i + 4]) == sep { return Array(all[(i + 4)...]) }
            i += 1
        }
        return []
    }
}
