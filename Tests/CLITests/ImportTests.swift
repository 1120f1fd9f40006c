import SwitchAuthCLI
import Testing

/// The streaming CSV reader (`switchauth import`), on tricky inputs, at every chunk size that moves
/// a boundary through them. In the CLITests suite, so that `--filter CLITests` runs it.
extension CLITests {
    @Test func csvReaderOnTrickyInputs() throws {
        typealias Row = CSVReader.Row
        let cases: [(String, [Row])] = [
            ("", []),
            ("a,b\n", [Row(line: 1, fields: ["a", "b"])]),
            ("a,b", [Row(line: 1, fields: ["a", "b"])]),
            ("a,b\r\nc,d\r\n", [Row(line: 1, fields: ["a", "b"]), Row(line: 2, fields: ["c", "d"])]),
            ("a,,\n", [Row(line: 1, fields: ["a", "", ""])]),
            ("\n\nx\n", [Row(line: 1, fields: [""]), Row(line: 2, fields: [""]), Row(line: 3, fields: ["x"])]),
            ("\"a,b\",c\n", [Row(line: 1, fields: ["a,b", "c"])]),
            ("\"say \"\"hi\"\"\",x\n", [Row(line: 1, fields: ["say \"hi\"", "x"])]),
            ("\"\"\"\"\n", [Row(line: 1, fields: ["\""])]),
            ("\"\",x\n", [Row(line: 1, fields: ["", "x"])]),
            ("\"two\nlines\",x\ny\n", [Row(line: 1, fields: ["two\nlines", "x"]), Row(line: 3, fields: ["y"])]),
            ("\"cr\r\nkept\"\r\nz\r\n", [Row(line: 1, fields: ["cr\r\nkept"]), Row(line: 3, fields: ["z"])]),
            ("ab\"c,d\"e\n", [Row(line: 1, fields: ["abc,de"])]),
            ("tab\there,back\\slash\n", [Row(line: 1, fields: ["tab\there", "back\\slash"])]),
            ("é,日本\n", [Row(line: 1, fields: ["é", "日本"])]),
        ]
        for chunk in [1, 2, 3, 5, 1 << 20] {
            for (input, expected) in cases {
                #expect(try CSVReader.parse(input, chunkSize: chunk) == expected, "\(input.debugDescription) chunk \(chunk)")
            }
        }
        let errors: [([UInt8], CSVReader.ParseError)] = [
            (Array("a\n\"open,b\nc\n".utf8), CSVReader.ParseError(line: 2, "unterminated quoted field")),
            ([0x61, 0x0a, 0x62, 0xff, 0x0a], CSVReader.ParseError(line: 2, "not valid UTF-8")),
        ]
        for chunk in [1, 4, 1 << 20] {
            for (input, expected) in errors {
                let reader = CSVReader(bytes: input, chunkSize: chunk)
                #expect(throws: expected) { while try reader.next() != nil {} }
            }
        }
    }
}
