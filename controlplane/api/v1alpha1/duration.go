package v1alpha1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Duration is a Go duration string ("5s", "250ms", "1m") or, as in old
// Pisanix manifests, an integer. The original controller declared the field
// as a Go time.Duration (integer nanoseconds) while Pisa-Proxy read the
// number as seconds, so an integer is read the way that makes sense for it:
// below NanosecondThreshold it is seconds, from it up it is nanoseconds.
//
// +kubebuilder:validation:XIntOrString
// +kubebuilder:validation:Type=""
// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^[0-9]+$`
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="type(self) == string || self >= 0",message="must not be negative"
type Duration string

// NanosecondThreshold: integers at or above it are nanoseconds, below it seconds.
const NanosecondThreshold = 1_000_000

// ParseDuration turns the field into a time.Duration; "" is zero.
func (d Duration) ParseDuration() (time.Duration, error) {
	s := string(d)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n < 0:
			return 0, fmt.Errorf("duration %d is negative", n)
		case n >= NanosecondThreshold:
			return time.Duration(n), nil
		case n > math.MaxInt64/int64(time.Second):
			return 0, fmt.Errorf("duration %d overflows", n)
		default:
			return time.Duration(n) * time.Second, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a Go duration like \"5s\" or an integer", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return v, nil
}

// UnmarshalJSON accepts a JSON string or integer.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*d = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("duration: %w", err)
		}
		*d = Duration(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string or an integer, got %s", b)
	}
	if _, err := n.Int64(); err != nil {
		return fmt.Errorf("duration: %s is not an integer", b)
	}
	*d = Duration(n.String())
	return nil
}

// MarshalJSON writes an integer back as an integer, anything else as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	if _, err := strconv.ParseInt(string(d), 10, 64); err == nil {
		return []byte(d), nil
	}
	return json.Marshal(string(d))
}
