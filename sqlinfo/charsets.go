package sqlinfo

import "github.com/pingcap/tidb/pkg/parser/charset"

// The parser accepts only the few character sets TiDB implements and
// rejects SET NAMES big5, CONVERT(x USING koi8r)... which would leave such
// texts unverifiable (refused for users with rules). It knows the others by
// name, so they are registered once, before any parse. How a multi-byte
// client character set changes where strings end is the session's concern
// (session/access.go), not the parser's.
func init() {
	for _, name := range []string{
		"armscii8", "big5", "cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866",
		"cp932", "dec8", "eucjpms", "euckr", "gb2312", "geostd8", "greek", "hebrew", "hp8",
		"keybcs2", "koi8r", "koi8u", "latin2", "latin5", "latin7", "macce", "macroman", "sjis",
		"swe7", "tis620", "ucs2", "ujis", "utf16", "utf16le", "utf32",
	} {
		if c, err := charset.GetCharsetInfo(name); c != nil && err != nil {
			charset.AddCharset(c) // known but "unsupported" until added
		}
	}
}
