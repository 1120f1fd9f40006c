import FormEncoding

/// Form decoding lives in `FormEncoding` (shared with `Decisions`, which reads mod_xml_curl's
/// fields lazily); the name is kept here for the server's users.
public typealias FormDecoder = FormEncoding.FormDecoder
