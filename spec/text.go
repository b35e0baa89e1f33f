package spec

import "unicode/utf8"

// Clip returns s cut to at most max bytes for a log or timeline, between
// characters rather than inside one (the seeds' users write Chinese), and
// whether it cut anything. Bytes that are not UTF-8 are cut anywhere.
func Clip(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	// A character's first byte is at most UTFMax-1 before s[max].
	cut := max
	for i := 1; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut], true
}
