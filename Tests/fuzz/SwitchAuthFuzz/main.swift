// Built two ways:
// - normally: a replay driver. `SwitchAuthFuzz FILE...` runs each file through the target (the
//   committed corpus and any crasher found), so regressions are tested without libFuzzer.
// - with `-sanitize=fuzzer -D FUZZING` (Tests/fuzz/run.sh): libFuzzer's entry point.
#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
import Foundation

var count = 0
for path in CommandLine.arguments.dropFirst() {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { continue }
    let files = isDir.boolValue
        ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).map { "\(path)/\($0)" }
        : [path]
    for f in files {
        if let d = FileManager.default.contents(atPath: f) {
            fuzzOne([UInt8](d))
            count += 1
        }
    }
}
print("replayed \(count) inputs")
#endif
