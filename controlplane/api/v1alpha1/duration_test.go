package v1alpha1

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		back    string
		wantErr bool
	}{
		{in: `"5s"`, want: 5 * time.Second, back: `"5s"`},
		{in: `"1m30s"`, want: 90 * time.Second, back: `"1m30s"`},
		{in: `7`, want: 7 * time.Second, back: `7`},                      // old manifest, seconds
		{in: `10000000000`, want: 10 * time.Second, back: `10000000000`}, // old manifest, time.Duration nanoseconds
		{in: `null`, want: 0, back: `""`},
		{in: `"soon"`, wantErr: true},
		{in: `1.5`, wantErr: true},
		{in: `"-5s"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if err == nil {
				var got time.Duration
				got, err = d.ParseDuration()
				if err == nil && got != tt.want {
					t.Fatalf("ParseDuration = %v, want %v", got, tt.want)
				}
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			b, err := json.Marshal(d)
			if err != nil || string(b) != tt.back {
				t.Fatalf("Marshal = %s, %v; want %s", b, err, tt.back)
			}
		})
	}
}
