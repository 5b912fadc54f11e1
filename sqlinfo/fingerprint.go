package sqlinfo

// Fingerprint normalizes sql (literals removed) and returns it with its
// digest, the same Classify reports: configuration uses it to turn a
// sample statement into the fingerprint rules match against.
func Fingerprint(sql string) (normalized, digest string) { return fingerprint(sql) }
