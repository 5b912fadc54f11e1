package audit

// Line is one record as the log writes it, a JSON object per line: for
// programs that read the log. The writer itself encodes without reflection
// (appendRecord); the tests hold the two to the same shape.
type Line struct {
	Time         string   `json:"time"` // RFC 3339 with fractional seconds, UTC
	Tenant       string   `json:"tenant"`
	User         string   `json:"user"`
	Client       string   `json:"client"`
	ConnID       uint32   `json:"conn_id"`
	DB           string   `json:"db"`
	Kind         string   `json:"kind"`
	Fingerprint  string   `json:"fingerprint"`
	Digest       string   `json:"digest"`
	Tables       []string `json:"tables"`
	DurationUS   int64    `json:"duration_us"`
	RowsAffected uint64   `json:"rows_affected"`
	RowsSent     uint64   `json:"rows_sent"`
	ErrorCode    uint16   `json:"error_code"`
	Denied       string   `json:"denied,omitempty"`
	Backend      string   `json:"backend"`
}
