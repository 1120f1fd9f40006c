import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Whether bytes are a well-formed XML document (Foundation's parser).
public enum XMLDocumentCheck {
    final class Delegate: NSObject, XMLParserDelegate {
        var failed = false
        func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { failed = true }
    }

    public static func isWellFormed(_ bytes: [UInt8]) throws -> Bool {
        let parser = XMLParser(data: Data(bytes))
        let d = Delegate()
        parser.delegate = d
        return parser.parse() && !d.failed
    }
}
